namespace ProxyGuard.Secrets.Tests;

public sealed class ResolverTests : IDisposable
{
    private const string Value = "synthetic-env-value-0001";
    private readonly string _dir = Directory.CreateTempSubdirectory("pg-secrets-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static SecretResolver Resolver(Dictionary<string, string>? env = null) =>
        new(new SecretResolverOptions { Environment = name => env is not null && env.TryGetValue(name, out var v) ? v : null });

    private string WriteFile(string name, string content, UnixFileMode mode)
    {
        var path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        File.SetUnixFileMode(path, mode);
        return path;
    }

    private const UnixFileMode Mode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Mode0644 = Mode0600 | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode Mode0666 = Mode0644 | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;

    [Fact]
    public async Task EnvReferenceResolves()
    {
        using var resolver = Resolver(new() { ["GITHUB_TOKEN"] = Value });
        var secret = await resolver.GetAsync("env:GITHUB_TOKEN", CancellationToken.None);
        Assert.Equal(Value, secret.Reveal());
        Assert.Null(resolver.Validate("env:GITHUB_TOKEN"));
    }

    [Fact]
    public async Task UnsetAndEmptyEnvFail()
    {
        using var resolver = Resolver(new() { ["EMPTY"] = string.Empty });
        var unset = await Assert.ThrowsAsync<SecretUnavailableException>(() => resolver.GetAsync("env:MISSING", CancellationToken.None).AsTask());
        Assert.Equal("env:MISSING", unset.Reference);
        Assert.Contains("MISSING is not set", unset.Message, StringComparison.Ordinal);
        Assert.Contains("empty", resolver.Validate("env:EMPTY"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("plain")]
    [InlineData("ftp:x")]
    [InlineData("env:")]
    [InlineData("vault:secret/data/ci/github")]
    [InlineData("vault:secret/ci/github#token")]
    [InlineData("vault:secret/data/#token")]
    public void BadSyntaxIsReported(string reference)
    {
        Assert.NotNull(SecretResolver.ValidateSyntax(reference));
        using var resolver = Resolver();
        Assert.NotNull(resolver.Validate(reference));
    }

    [Fact]
    public void GoodSyntaxIsAccepted()
    {
        Assert.Null(SecretResolver.ValidateSyntax("env:X"));
        Assert.Null(SecretResolver.ValidateSyntax("file:/run/secrets/x"));
        Assert.Null(SecretResolver.ValidateSyntax("vault:secret/data/ci/github#token"));
        Assert.True(SecretResolver.IsReference("vault:a/data/b#c"));
        Assert.False(SecretResolver.IsReference("literal"));
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("\n\n")]
    [InlineData("")]
    public async Task FileReferenceTrimsTrailingNewline(string newline)
    {
        var path = WriteFile("token", Value + newline, Mode0600);
        using var resolver = Resolver();
        var secret = await resolver.GetAsync("file:" + path, CancellationToken.None);
        Assert.Equal(Value, secret.Reveal());
    }

    [Fact]
    public async Task ReadableByOthersIsAccepted()
    {
        var path = WriteFile("token", Value, Mode0644);
        using var resolver = Resolver();
        Assert.Equal(Value, (await resolver.GetAsync("file:" + path, CancellationToken.None)).Reveal());
    }

    [Theory]
    [InlineData(Mode0666)]
    [InlineData(Mode0600 | UnixFileMode.GroupWrite)]
    [InlineData(Mode0600 | UnixFileMode.OtherWrite)]
    public async Task WritableByOthersIsRefused(UnixFileMode mode)
    {
        var path = WriteFile("token", Value, mode);
        using var resolver = Resolver();
        var ex = await Assert.ThrowsAsync<SecretUnavailableException>(() => resolver.GetAsync("file:" + path, CancellationToken.None).AsTask());
        Assert.Contains("writable by group or others", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Value, ex.ToString(), StringComparison.Ordinal);
        Assert.NotNull(resolver.Validate("file:" + path));
    }

    [Fact]
    public async Task DirectoryOfFilesWorksPerFile()
    {
        WriteFile("mount/github", "synthetic-github-0001\n", Mode0644);
        WriteFile("mount/npm", "synthetic-npm-0002\n", Mode0644);
        var mount = Path.Combine(_dir, "mount");
        using var resolver = Resolver();

        Assert.Equal("synthetic-github-0001", (await resolver.GetAsync($"file:{mount}/github", CancellationToken.None)).Reveal());
        Assert.Equal("synthetic-npm-0002", (await resolver.GetAsync($"file:{mount}/npm", CancellationToken.None)).Reveal());

        var ex = await Assert.ThrowsAsync<SecretUnavailableException>(() => resolver.GetAsync("file:" + mount, CancellationToken.None).AsTask());
        Assert.Contains("is a directory", ex.Reason, StringComparison.Ordinal);
        Assert.Contains($"file:{mount}/NAME", ex.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SymlinkedMountFileUsesTargetMode()
    {
        var target = WriteFile("mount/..data/github", "synthetic-github-0003", Mode0644);
        var link = Path.Combine(_dir, "mount", "github");
        File.CreateSymbolicLink(link, target);
        using var resolver = Resolver();
        Assert.Equal("synthetic-github-0003", (await resolver.GetAsync("file:" + link, CancellationToken.None)).Reveal());
    }

    [Fact]
    public async Task MissingEmptyAndMultiLineFilesFail()
    {
        using var resolver = Resolver();
        Assert.Contains("does not exist", resolver.Validate("file:" + Path.Combine(_dir, "nope")), StringComparison.Ordinal);
        var empty = WriteFile("empty", "\n", Mode0600);
        Assert.Contains("empty", resolver.Validate("file:" + empty), StringComparison.Ordinal);
        var multi = WriteFile("multi", "line-one-synthetic\nline-two-synthetic\n", Mode0600);
        var ex = await Assert.ThrowsAsync<SecretUnavailableException>(() => resolver.GetAsync("file:" + multi, CancellationToken.None).AsTask());
        Assert.DoesNotContain("line-one-synthetic", ex.Message, StringComparison.Ordinal);
    }
}
