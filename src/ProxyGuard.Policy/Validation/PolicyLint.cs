namespace ProxyGuard.Policy.Validation;

/// <summary>Checks over a compiled policy for things that are valid but cannot work as written (warnings).</summary>
internal static class PolicyLint
{
    /// <summary>
    /// A secret whose hosts no allow rule can reach (tunnel-only rules never carry a substituted request) is never
    /// substituted: every request to those hosts is denied before the secret stage.
    /// </summary>
    public static IEnumerable<PolicyDiagnostic> UnreachableSecrets(CompiledPolicy policy, string file)
    {
        if (policy.Default == RuleAction.Allow)
        {
            yield break;
        }

        var allowRules = policy.Rules.Where(r => r.Action == RuleAction.Allow && r.TunnelMode == TunnelMode.Intercept).ToList();
        for (var i = 0; i < policy.Secrets.Count; i++)
        {
            var secret = policy.Secrets[i];
            var unreachable = Enumerable.Range(0, secret.HostPatterns.Count)
                .Where(h => !allowRules.Any(rule => Overlaps(secret.HostPatterns[h], rule))).ToList();
            if (unreachable.Count == 0)
            {
                continue;
            }

            if (unreachable.Count == secret.HostPatterns.Count)
            {
                yield return new PolicyDiagnostic(file, secret.Line, secret.Column,
                    $"warning: secret '{secret.Name}' is bound to {string.Join(", ", unreachable.Select(h => secret.HostPatterns[h]))}, which no allow rule reaches: it will never be substituted (add a rule for those hosts or remove the secret)");
                continue;
            }

            // Some of its hosts are reachable: each binding that is not, at its list item.
            foreach (var h in unreachable)
            {
                var (line, column) = h < secret.HostPositions.Count ? secret.HostPositions[h] : (secret.Line, secret.Column);
                yield return new PolicyDiagnostic(file, line, column,
                    $"warning: secrets[{i}].hosts[{h}]: secret '{secret.Name}' is bound to {secret.HostPatterns[h]}, which no allow rule reaches: it is never substituted toward it (add a rule for it or remove it from the secret's hosts)");
            }
        }
    }

    /// <summary>True when some host matched by <paramref name="secretPattern"/> can also match one of the rule's hosts.</summary>
    private static bool Overlaps(string secretPattern, RuleSpec rule)
    {
        if (rule.HostMatcher.MatchesAny || !HostPattern.TryParse(secretPattern, allowAny: false, out var secret, out _))
        {
            return true;
        }

        switch (secret.Kind)
        {
            case HostPattern.Kind.Exact:
                return rule.HostMatcher.Matches(secret.Value);
            case HostPattern.Kind.Network:
                return rule.HostMatcher.Matches(secret.Network.BaseAddress.ToString())
                    || rule.Hosts.Any(h => HostPattern.TryParse(h, true, out var p, out _) && p.Kind == HostPattern.Kind.Network
                        && p.Network.BaseAddress.AddressFamily == secret.Network.BaseAddress.AddressFamily
                        && (p.Network.Contains(secret.Network.BaseAddress) || secret.Network.Contains(p.Network.BaseAddress)));
            case HostPattern.Kind.Wildcard:
                // ".example.com": any rule host below it, or a rule wildcard above or below it.
                return rule.Hosts.Any(h => HostPattern.TryParse(h, true, out var p, out _) && p.Kind switch
                {
                    HostPattern.Kind.Exact => p.Value.EndsWith(secret.Value, StringComparison.Ordinal),
                    HostPattern.Kind.Wildcard => p.Value.EndsWith(secret.Value, StringComparison.Ordinal) || secret.Value.EndsWith(p.Value, StringComparison.Ordinal),
                    _ => false,
                });
            default:
                return true;
        }
    }
}
