using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using ProxyGuard.Policy.IO;

namespace ProxyGuard.Policy;

/// <summary>The <c>tls</c> section.</summary>
public sealed class TlsSpec
{
    /// <summary>The largest CA file read from <c>tls.upstream_ca_files</c> (system bundles are about 200 KiB).</summary>
    public const int MaxCaFileBytes = 4 * 1024 * 1024;

    /// <summary>Extra PEM roots trusted for upstream servers, as absolute paths (relative entries are resolved against the policy file's directory).</summary>
    public required IReadOnlyList<string> UpstreamCaFiles { get; init; }

    /// <summary>Where each entry of <see cref="UpstreamCaFiles"/> is written in the policy (1-based line and column).</summary>
    public IReadOnlyList<(int Line, int Column)> UpstreamCaFilePositions { get; init; } = [];

    /// <summary>
    /// Reads every CA file: a regular file of at most <see cref="MaxCaFileBytes"/>, within <paramref name="timeout"/>.
    /// A file that cannot be loaded throws <see cref="PolicyFileException"/> with the entry's position.
    /// </summary>
    public X509Certificate2Collection LoadUpstreamRoots(string policyFile, TimeSpan timeout)
    {
        var roots = new X509Certificate2Collection();
        for (var i = 0; i < UpstreamCaFiles.Count; i++)
        {
            if (TryImport(roots, i, policyFile, timeout) is { } failure)
            {
                throw failure;
            }
        }

        return roots;
    }

    /// <summary>Every CA file that <see cref="LoadUpstreamRoots"/> would refuse, each at its entry's position.</summary>
    public IReadOnlyList<PolicyDiagnostic> CheckUpstreamCaFiles(string policyFile, TimeSpan timeout)
    {
        var problems = new List<PolicyDiagnostic>();
        for (var i = 0; i < UpstreamCaFiles.Count; i++)
        {
            var roots = new X509Certificate2Collection();
            if (TryImport(roots, i, policyFile, timeout) is { } failure)
            {
                problems.Add(failure.Diagnostic);
            }

            foreach (var root in roots)
            {
                root.Dispose();
            }
        }

        return problems;
    }

    private PolicyFileException? TryImport(X509Certificate2Collection roots, int i, string policyFile, TimeSpan timeout)
    {
        var file = UpstreamCaFiles[i];
        var (line, column) = i < UpstreamCaFilePositions.Count ? UpstreamCaFilePositions[i] : (1, 1);
        try
        {
            var before = roots.Count;
            roots.ImportFromPem(Encoding.UTF8.GetString(BoundedFile.ReadAllBytes(file, MaxCaFileBytes, timeout)));
            if (roots.Count == before)
            {
                // ImportFromPem skips everything that is not a PEM certificate: an empty file, a DER file or a key
                // would otherwise add no root at all, silently, and every upstream signed by the intended CA would fail.
                var empty = new PolicyDiagnostic(policyFile, line, column,
                    $"tls.upstream_ca_files[{i}]: '{file}' holds no PEM certificate (expected one or more '-----BEGIN CERTIFICATE-----' blocks)");
                return new PolicyFileException(empty, new InvalidDataException(empty.Message));
            }

            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            var reason = ex is BoundedFileException ? ex.Message : $"cannot load '{file}': {ex.Message}";
            return new PolicyFileException(new PolicyDiagnostic(policyFile, line, column, $"tls.upstream_ca_files[{i}]: {reason}"), ex);
        }
    }
}

/// <summary>A file the policy references could not be loaded; <see cref="Diagnostic"/> points at the reference.</summary>
public sealed class PolicyFileException : IOException
{
    public PolicyFileException(PolicyDiagnostic diagnostic, Exception innerException)
        : base(diagnostic?.ToString(), innerException)
    {
        Diagnostic = diagnostic!;
    }

    public PolicyFileException()
    {
        Diagnostic = new PolicyDiagnostic(string.Empty, 1, 1, string.Empty);
    }

    public PolicyFileException(string message)
        : base(message)
    {
        Diagnostic = new PolicyDiagnostic(string.Empty, 1, 1, message);
    }

    public PolicyFileException(string message, Exception innerException)
        : base(message, innerException)
    {
        Diagnostic = new PolicyDiagnostic(string.Empty, 1, 1, message);
    }

    public PolicyDiagnostic Diagnostic { get; }
}
