using System.Security.Cryptography;
using System.Text;
using ProxyGuard.Policy.IO;
using ProxyGuard.Policy.Validation;
using ProxyGuard.Policy.Yaml;

namespace ProxyGuard.Policy;

/// <summary>Loads, validates and compiles policy files. Never throws for a bad policy: problems come back as diagnostics.</summary>
public static class PolicyLoader
{
    /// <summary>Policy files larger than this are refused.</summary>
    public const int MaxFileBytes = 4 * 1024 * 1024;

    public static PolicyLoadResult LoadFile(string path, PolicyLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= new PolicyLoadOptions();
        var fullPath = Path.GetFullPath(path);
        byte[] bytes;
        try
        {
            if (options.CheckFilePermissions && FilePermissions.Check(fullPath) is { } permissionError)
            {
                return Fail(path, 1, 1, permissionError);
            }

            if (Directory.Exists(fullPath))
            {
                return Fail(path, 1, 1, "is a directory, not a policy file");
            }

            if (!File.Exists(fullPath))
            {
                return Fail(path, 1, 1, "file not found");
            }

            if (new FileInfo(fullPath).Length > MaxFileBytes)
            {
                return Fail(path, 1, 1, $"policy file is larger than {MaxFileBytes / (1024 * 1024)} MiB");
            }

            // Bounded again while reading: the file may be a FIFO or device, or be replaced or grow after the checks above.
            bytes = BoundedFile.ReadAllBytes(fullPath, MaxFileBytes, options.FileReadTimeout);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Fail(path, 1, 1, $"cannot read the policy file: {ex.Message}");
        }

        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return Fail(path, 1, 1, "the policy file is not valid UTF-8");
        }

        if (text.Length > 0 && text[0] == '\uFEFF')
        {
            text = text[1..];
        }

        return Compile(text, path, fullPath, Convert.ToHexStringLower(SHA256.HashData(bytes)), Path.GetDirectoryName(fullPath) ?? Directory.GetCurrentDirectory(), options);
    }

    /// <summary>
    /// Everything the proxy checks before it uses a policy file, in one place: <c>policy check</c> and <c>run</c> (at start)
    /// both call this, so they cannot drift. It is <see cref="LoadFile"/>, then every file the policy names is read as
    /// the proxy reads it (each CA bundle in <c>tls.upstream_ca_files</c>: a regular file within the size and time bounds
    /// holding at least one PEM certificate). Every problem comes back as a diagnostic at the entry's position, named
    /// after <paramref name="path"/> as given; warnings are kept. Secret references are resolved only when
    /// <see cref="PolicyLoadOptions.SecretReferenceValidator"/> is set (otherwise their syntax is checked).
    /// </summary>
    public static PolicyLoadResult Validate(string path, PolicyLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= new PolicyLoadOptions();
        var loaded = LoadFile(path, options);

        // The files are read also when the policy has other problems: every problem in one pass.
        var fileProblems = (loaded.Policy?.Tls ?? loaded.ReadTls)?.CheckUpstreamCaFiles(path, options.FileReadTimeout) ?? [];
        return fileProblems.Count == 0
            ? loaded
            : new PolicyLoadResult(null, loaded.Diagnostics.Concat(fileProblems).OrderBy(d => d.Line).ThenBy(d => d.Column).ToList()) { Warnings = loaded.Warnings };
    }

    /// <summary>
    /// Loads a policy from text. <paramref name="fileName"/> is used in diagnostics and as <see cref="CompiledPolicy.FilePath"/>;
    /// relative paths inside the policy resolve against its directory (or the current directory).
    /// </summary>
    public static PolicyLoadResult LoadText(string yaml, string fileName, PolicyLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        ArgumentNullException.ThrowIfNull(fileName);
        if (yaml.Length > MaxFileBytes)
        {
            return Fail(fileName, 1, 1, $"policy is larger than {MaxFileBytes / (1024 * 1024)} MiB");
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(fileName)) ?? Directory.GetCurrentDirectory();
        return Compile(yaml, fileName, fileName, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(yaml))), directory, options ?? new PolicyLoadOptions());
    }

    private static PolicyLoadResult Compile(string text, string displayName, string filePath, string sha256, string baseDirectory, PolicyLoadOptions options)
    {
        var diagnostics = new List<PolicyDiagnostic>();
        var warnings = new List<PolicyDiagnostic>();
        var root = YamlTreeReader.Read(text, displayName, diagnostics);
        CompiledPolicy? policy = null;
        TlsSpec? tls = null;
        if (root is not null)
        {
            var compiler = new PolicyCompiler(displayName, baseDirectory, options, diagnostics, warnings);
            var compiled = compiler.Compile(root, filePath, sha256);
            policy = diagnostics.Count == 0 ? compiled : null;
            tls = compiler.Tls;
        }

        if (policy is not null)
        {
            warnings.AddRange(PolicyLint.UnreachableSecrets(policy, displayName));
        }

        var sorted = diagnostics.Distinct().OrderBy(d => d.Line).ThenBy(d => d.Column).ToList();
        return new PolicyLoadResult(policy, sorted) { Warnings = warnings.Distinct().OrderBy(d => d.Line).ThenBy(d => d.Column).ToList(), ReadTls = tls };
    }

    private static PolicyLoadResult Fail(string file, int line, int column, string message) =>
        new(null, [new PolicyDiagnostic(file, line, column, message)]);
}
