using System.Security.Cryptography;
using ProxyGuard.Inspection;
using ProxyGuard.Policy;
using ProxyGuard.Secrets;

namespace ProxyGuard.Engine.Runtime;

/// <summary>Compiles a loaded policy into a <see cref="ProxySnapshot"/>: resolves client tokens and secrets, builds the scanner.</summary>
internal static class SnapshotBuilder
{
    /// <param name="decodeBudget">The process-wide decompression budget the scanner charges (null offline).</param>
    public static async Task<ProxySnapshot> BuildAsync(
        CompiledPolicy policy, ISecretProvider secrets, byte[] installationKey, CancellationToken ct, Inspection.Budgets.ResourceBudget? decodeBudget = null)
    {
        var clients = new List<ClientCredential>(policy.Clients.Count);
        foreach (var client in policy.Clients)
        {
            try
            {
                var token = await secrets.GetAsync(client.TokenReference, ct);
                clients.Add(new ClientCredential(client.Id, token, client.Networks, null));
            }
            catch (SecretUnavailableException ex)
            {
                clients.Add(new ClientCredential(client.Id, null, client.Networks, ex.Message));
            }
        }

        var bindings = new List<SecretBinding>(policy.Secrets.Count);
        var unavailable = new List<UnavailableSecret>();
        foreach (var secret in policy.Secrets)
        {
            var placeholder = PlaceholderFor(secret, installationKey);
            try
            {
                var value = await secrets.GetAsync(secret.ValueReference, ct);
                var hosts = secret.Hosts;
                bindings.Add(new SecretBinding(
                    secret.Name, placeholder, value, hosts.Matches, secret.InHeaders, secret.InQuery, secret.InBody)
                {
                    AllowPlainHttp = secret.AllowPlainHttp,
                });
            }
            catch (SecretUnavailableException ex)
            {
                unavailable.Add(new UnavailableSecret(secret.Name, placeholder, ex.Message));
            }
        }

        var content = policy.Content;
        var substitutor = new Substitutor(bindings, secrets.History);
        ContentScanner? scanner = null;
        var builtinOff = content.BuiltinDetectorIds is { Count: 0 };
        if (!builtinOff || content.Rules.Count > 0 || bindings.Count > 0)
        {
            scanner = new ContentScanner(new ScannerOptions
            {
                BuiltinDetectorIds = content.BuiltinDetectorIds,
                CustomRules = content.Rules
                    .Select(r => new CustomRule(r.Name, r.Pattern, Map(r.Action), r.Hosts.Matches))
                    .ToList(),
                Exemptions = content.Exempt.Select(e => new Exemption(e.Detectors, e.Hosts.Matches)).ToList(),
                KnownSecrets = substitutor.KnownSecrets(),
                DecodeBudget = decodeBudget,
            });
        }

        // Bounded: regular files of at most TlsSpec.MaxCaFileBytes, each read within the default time bound.
        var roots = policy.Tls.LoadUpstreamRoots(policy.FilePath, Policy.IO.BoundedFile.DefaultTimeout);

        return new ProxySnapshot(policy, clients, scanner, substitutor, bindings, unavailable, roots);
    }

    public static string PlaceholderFor(SecretSpec secret, byte[] installationKey) =>
        secret.Placeholder ?? Placeholders.Derive(secret.Name, installationKey);

    /// <summary>Reads (or creates, mode 0600) the per-installation key that derived placeholders are keyed with.</summary>
    public static byte[] LoadInstallationKey(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        var path = Path.Combine(dataDirectory, "installation.key");
        if (File.Exists(path))
        {
            var existing = Convert.FromHexString(File.ReadAllText(path).Trim());
            if (existing.Length >= 16)
            {
                return existing;
            }
        }

        var key = RandomNumberGenerator.GetBytes(32);
        Certificates.CertificateAuthority.WritePrivateFile(path, Convert.ToHexString(key) + "\n");
        return key;
    }

    private static ContentAction Map(ContentRuleAction action) => action switch
    {
        ContentRuleAction.Redact => ContentAction.Redact,
        ContentRuleAction.Log => ContentAction.Log,
        _ => ContentAction.Deny,
    };
}
