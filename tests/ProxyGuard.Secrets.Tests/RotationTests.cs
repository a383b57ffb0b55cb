using System.Text;
using ProxyGuard.Secrets.Tests.Support;

namespace ProxyGuard.Secrets.Tests;

/// <summary>Previous values of a rotated secret stay known (scrubbed, recognised) for the grace period.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Disposed in IAsyncLifetime.DisposeAsync.")]
public sealed class RotationTests : IAsyncLifetime
{
    private const string Placeholder = "PG_ROTATED_AAAABBBBCCCCDDDD";
    private readonly string _dir = Directory.CreateTempSubdirectory("pg-rotation-").FullName;
    private readonly FakeTimeProvider _time = new();
    private readonly FakeVaultServer _server = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static Substitutor Snapshot(SecretValue value, SecretHistory? history) => new(
        [new SecretBinding("rotated", Placeholder, value, h => h == "api.test", true, true, true)], history);

    private string WriteSecret(string value)
    {
        var path = Path.Combine(_dir, "token");
        File.WriteAllText(path, value + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    [Fact]
    public async Task FileSecretRewrittenAndReloadedKeepsOldValueKnownForTheGrace()
    {
        using var resolver = new SecretResolver(new SecretResolverOptions
        {
            Environment = _ => null,
            TimeProvider = _time,
            History = new SecretHistory(TimeSpan.FromHours(24), 4, _time),
        });
        var path = WriteSecret("old-synthetic-value-\"1\"");
        var reference = "file:" + path;
        var first = Snapshot(await resolver.GetAsync(reference, CancellationToken.None), resolver.History);
        Assert.Equal("rotated", first.FindRealValue("old-synthetic-value-\"1\""));

        // Rotation: the file is rewritten and the policy reloaded (a new snapshot).
        WriteSecret("new-synthetic-value-2");
        var second = Snapshot(await resolver.GetAsync(reference, CancellationToken.None), resolver.History);

        // The sandbox sends the old value after the reload: recognised (the engine denies).
        Assert.Equal("rotated", second.FindRealValue("Bearer old-synthetic-value-\"1\""));
        Assert.Equal("rotated", second.FindRealValue("{\"t\":\"old-synthetic-value-\\\"1\\\"\"}"));
        Assert.Equal("rotated", second.FindRealValue("new-synthetic-value-2"));

        // The upstream echoes the old value: scrubbed, whole and streaming.
        var body = Encoding.UTF8.GetBytes("echo old-synthetic-value-\"1\" and " + Convert.ToBase64String(Encoding.UTF8.GetBytes("old-synthetic-value-\"1\"")));
        var scrubbed = Encoding.UTF8.GetString(second.ScrubBody(body)!);
        Assert.Equal("echo " + Placeholder + " and " + Placeholder, scrubbed);
        using (var reader = new StreamReader(second.CreateScrubbingStream(new MemoryStream(body))))
        {
            Assert.Equal(scrubbed, await reader.ReadToEndAsync());
        }

        // The content scanner of the new snapshot knows both values too (vault-secret), from the same set.
        var scanner = new Inspection.ContentScanner(new Inspection.ScannerOptions { KnownSecrets = second.KnownSecrets() });
        foreach (var sent in new[] { "old-synthetic-value-\"1\"", "new-synthetic-value-2" })
        {
            var result = scanner.ScanText("Bearer " + sent, Inspection.ScanLocation.Header, "api.test");
            Assert.Contains(result.Findings, f => f.Detector == "vault-secret");
        }

        // Past the grace the old value is forgotten; the current one stays.
        _time.Advance(TimeSpan.FromHours(24) + TimeSpan.FromSeconds(1));
        Assert.Equal(["new-synthetic-value-2"], second.KnownSecrets().Select(k => k.Value));
        Assert.Null(second.FindRealValue("old-synthetic-value-\"1\""));
        Assert.Null(second.ScrubBody(Encoding.UTF8.GetBytes("old-synthetic-value-\"1\"")));
        Assert.Equal("rotated", second.FindRealValue("new-synthetic-value-2"));
    }

    [Fact]
    public async Task VaultRefreshWithANewValueKeepsTheOldOneKnown()
    {
        _server.Secrets["/v1/secret/data/ci/api"] = "{\"token\":\"vault-old-synthetic-0001\"}";
        using var resolver = new SecretResolver(new SecretResolverOptions
        {
            Environment = _ => null,
            Vault = new VaultOptions { Address = _server.Address, Token = "s.synthetic-vault-token" },
            CacheTtl = TimeSpan.FromMinutes(5),
            TimeProvider = _time,
            History = new SecretHistory(TimeSpan.FromHours(1), 4, _time),
        });
        var value = await resolver.GetAsync("vault:secret/data/ci/api#token", CancellationToken.None);
        var substitutor = Snapshot(value, resolver.History);
        Assert.Equal("rotated", substitutor.FindRealValue("vault-old-synthetic-0001"));

        _server.Secrets["/v1/secret/data/ci/api"] = "{\"token\":\"vault-new-synthetic-0002\"}";
        _time.Advance(TimeSpan.FromMinutes(6));
        await value.EnsureFreshAsync(CancellationToken.None);
        Assert.Equal("vault-new-synthetic-0002", value.Reveal());

        // Same snapshot (no reload): the live value changed; both are known.
        Assert.Equal("rotated", substitutor.FindRealValue("vault-new-synthetic-0002"));
        Assert.Equal("rotated", substitutor.FindRealValue("x=vault-old-synthetic-0001"));
        Assert.Equal(Placeholder, substitutor.ScrubText("vault-old-synthetic-0001"));

        _time.Advance(TimeSpan.FromHours(1));
        Assert.Null(substitutor.FindRealValue("vault-old-synthetic-0001"));
    }

    [Fact]
    public void RememberedValuesAreBoundedPerSecret()
    {
        var history = new SecretHistory(TimeSpan.FromDays(1), maxPrevious: 2, _time);
        Substitutor? last = null;
        for (var i = 1; i <= 5; i++)
        {
            last = Snapshot(new SecretValue($"rotating-synthetic-{i}"), history);
        }

        Assert.Equal("rotated", last!.FindRealValue("rotating-synthetic-5"));
        Assert.Equal("rotated", last.FindRealValue("rotating-synthetic-4"));
        Assert.Equal("rotated", last.FindRealValue("rotating-synthetic-3"));
        Assert.Null(last.FindRealValue("rotating-synthetic-2"));
        Assert.Null(last.FindRealValue("rotating-synthetic-1"));
    }

    [Fact]
    public void AnOlderSnapshotDoesNotFlipTheHistoryBack()
    {
        var history = new SecretHistory(TimeSpan.FromDays(1), 4, _time);
        var old = Snapshot(new SecretValue("flip-synthetic-old"), history);
        var current = Snapshot(new SecretValue("flip-synthetic-new"), history);

        // The old snapshot still serves in-flight requests and rebuilds on the history change, but it
        // must not record its (older) value as current again: the history settles.
        var version = history.Version;
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("rotated", old.FindRealValue("flip-synthetic-old"));
            Assert.Equal("rotated", current.FindRealValue("flip-synthetic-old"));
        }

        Assert.Equal(version, history.Version);
        var expiry = DateTimeOffset.MaxValue;
        var previous = history.Previous("rotated", ref expiry);
        Assert.Equal("flip-synthetic-old", Encoding.UTF8.GetString(Assert.Single(previous)));
    }

    [Fact]
    public void WithoutHistoryNothingIsRemembered()
    {
        _ = Snapshot(new SecretValue("plain-synthetic-old"), null);
        var second = Snapshot(new SecretValue("plain-synthetic-new"), null);
        Assert.Null(second.FindRealValue("plain-synthetic-old"));
    }

    [Fact]
    public void GraceIsConfigurableFromTheEnvironment()
    {
        Assert.Equal(SecretHistory.DefaultGrace, SecretHistory.FromEnvironment(_ => null).Grace);
        Assert.Equal(TimeSpan.FromSeconds(90), SecretHistory.FromEnvironment(n => n == SecretHistory.GraceVariable ? "90" : null).Grace);
        Assert.Throws<ArgumentException>(() => SecretHistory.FromEnvironment(n => n == SecretHistory.GraceVariable ? "-1" : null));
        Assert.Equal(TimeSpan.FromSeconds(30), SecretResolverOptions.FromEnvironment(n => n == SecretHistory.GraceVariable ? "30" : null).History!.Grace);
        Assert.DoesNotContain("synthetic", new SecretHistory().ToString(), StringComparison.Ordinal);
    }
}
