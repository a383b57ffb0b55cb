using System.Text;
using ProxyGuard.Inspection.Detectors;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>Everything compiled once per <see cref="ContentScanner"/>: prefilter tables, rules, limits.</summary>
internal sealed class ScannerCore
{
    private readonly Lazy<AnchorTable?> _hostTable;

    public ScannerCore(ScannerOptions options)
    {
        Options = options;
        var all = BuiltinCatalog.All;
        var enabled = new bool[all.Count];
        var vaultEnabled = true;
        if (options.BuiltinDetectorIds is null)
        {
            Array.Fill(enabled, true);
        }
        else
        {
            vaultEnabled = false;
            foreach (var id in options.BuiltinDetectorIds)
            {
                if (id == KnownSecretDetector.DetectorId)
                {
                    vaultEnabled = true;
                    continue;
                }

                var found = false;
                foreach (var detector in all)
                {
                    if (detector.Id == id)
                    {
                        enabled[detector.Index] = true;
                        found = true;
                    }
                }

                if (!found)
                {
                    throw new ArgumentException($"unknown built-in detector id '{id}'", nameof(options));
                }
            }
        }

        Enabled = enabled;
        UrlPasswordEnabled = enabled[BuiltinCatalog.UrlPassword.Index];

        var rules = new CompiledRule[options.CustomRules.Count];
        for (var i = 0; i < rules.Length; i++)
        {
            rules[i] = new CompiledRule(options.CustomRules[i], i, options.ScanBudget);
        }

        Rules = rules;

        var caseSensitive = new List<(string, Detector)>();
        var keywords = new List<(string, Detector)>();
        foreach (var detector in all)
        {
            if (!enabled[detector.Index])
            {
                continue;
            }

            foreach (var anchor in detector.Anchors)
            {
                caseSensitive.Add((anchor, detector));
            }

            foreach (var keyword in detector.Keywords)
            {
                keywords.Add((keyword, detector));
            }
        }

        if (vaultEnabled)
        {
            ValueMatcher = BuildValueMatcher(options.KnownSecrets);
            var (raw, encoded) = BuildSecretAnchors(options.KnownSecrets);
            if (raw.Length > 0)
            {
                var detector = new KnownSecretDetector(false, raw);
                foreach (var anchor in raw)
                {
                    caseSensitive.Add((anchor, detector));
                }
            }

            if (encoded.Length > 0)
            {
                var detector = new KnownSecretDetector(true, encoded);
                foreach (var anchor in encoded)
                {
                    caseSensitive.Add((anchor, detector));
                }
            }
        }

        CaseSensitive = AnchorTable.Build(caseSensitive, ignoreCase: false);
        BytePrefilter = BytePrefilter.Build(caseSensitive, keywords);
        Keywords = AnchorTable.Build(keywords, ignoreCase: true);
        _hostTable = new Lazy<AnchorTable?>(() => AnchorTable.Build(caseSensitive.Concat(keywords), ignoreCase: true));

        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var detector in all)
        {
            ids[detector.Id] = detector.Index;
        }

        DetectorIndexById = ids;
    }

    public ScannerOptions Options { get; }

    /// <summary>Hosts whose <see cref="HostProfile"/> is remembered; past this, profiles are computed per scan.</summary>
    internal const int MaxProfiles = 4096;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, HostProfile> _profiles = new(StringComparer.Ordinal);

    /// <summary>
    /// What the policy's exemptions and rule host lists make of one host: computed once per host (a request scans
    /// several fields, and most traffic goes to few hosts), remembered for up to <see cref="MaxProfiles"/> hosts.
    /// </summary>
    public HostProfile ProfileFor(string host)
    {
        if (_profiles.TryGetValue(host, out var known))
        {
            return known;
        }

        var profile = BuildProfile(host);
        if (_profiles.Count < MaxProfiles)
        {
            _profiles.TryAdd(host, profile);
        }

        return profile;
    }

    private HostProfile BuildProfile(string host)
    {
        bool[]? exempt = null;
        var vaultExempt = false;
        foreach (var exemption in Options.Exemptions)
        {
            if (!exemption.AppliesToHost(host))
            {
                continue;
            }

            foreach (var id in exemption.DetectorIds)
            {
                if (id == KnownSecretDetector.DetectorId)
                {
                    vaultExempt = true;
                }
                else if (DetectorIndexById.TryGetValue(id, out var index))
                {
                    exempt ??= new bool[Enabled.Length];
                    exempt[index] = true;
                }
            }
        }

        bool[]? ruleActive = null;
        var any = false;
        if (Rules.Length > 0)
        {
            ruleActive = new bool[Rules.Length];
            foreach (var rule in Rules)
            {
                ruleActive[rule.Index] = rule.Rule.AppliesToHost(host) && !IsNameExempt(host, rule.Rule.Name);
                any |= ruleActive[rule.Index];
            }
        }

        return new HostProfile(exempt, vaultExempt, ruleActive, any);
    }

    private bool IsNameExempt(string host, string name)
    {
        foreach (var exemption in Options.Exemptions)
        {
            foreach (var id in exemption.DetectorIds)
            {
                if (id == name && exemption.AppliesToHost(host))
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>The <see cref="TimeProvider"/> timestamp at which a scan starting now runs out of budget (long.MaxValue: never).</summary>
    public long Deadline()
    {
        var budget = Options.ScanBudget;
        if (budget == Timeout.InfiniteTimeSpan || budget < TimeSpan.Zero)
        {
            return long.MaxValue;
        }

        var time = Options.TimeProvider;
        var ticks = budget.TotalSeconds * time.TimestampFrequency;
        var now = time.GetTimestamp();
        return ticks >= long.MaxValue - now ? long.MaxValue - 1 : now + (long)ticks;
    }

    public bool[] Enabled { get; }

    public bool UrlPasswordEnabled { get; }

    public CompiledRule[] Rules { get; }

    public AnchorTable? CaseSensitive { get; }

    public AnchorTable? Keywords { get; }

    /// <summary>All anchors and keywords for scanning bodies as bytes (null when no detector has any).</summary>
    public BytePrefilter? BytePrefilter { get; }

    public AnchorTable? HostTable => _hostTable.Value;

    /// <summary>
    /// The shared real-value matcher over the known secrets (the one the secret gate and the scrubbers use), or null
    /// when <c>vault-secret</c> is off or no secret is known: every form it finds is a <c>vault-secret</c> finding.
    /// </summary>
    public Matching.RealValueMatcher? ValueMatcher { get; }

    public Dictionary<string, int> DetectorIndexById { get; }

    /// <summary>The shared matcher over the values of <paramref name="secrets"/> that get anchors (at least 4 bytes); null when none.</summary>
    internal static Matching.RealValueMatcher? BuildValueMatcher(IReadOnlyList<KnownSecret> secrets)
    {
        var values = new List<Matching.KnownValue>();
        for (var i = 0; i < secrets.Count; i++)
        {
            if (!string.IsNullOrEmpty(secrets[i].Value))
            {
                var bytes = Encoding.UTF8.GetBytes(secrets[i].Value);
                if (bytes.Length >= 4)
                {
                    values.Add(new Matching.KnownValue(i, bytes));
                }
            }
        }

        if (values.Count == 0)
        {
            return null;
        }

        var matcher = new Matching.RealValueMatcher(values);
        foreach (var value in values)
        {
            // The matcher keeps its own copies.
            if (System.Runtime.InteropServices.MemoryMarshal.TryGetArray(value.Value, out var segment))
            {
                Array.Clear(segment.Array!);
            }
        }

        return matcher.IsEmpty ? null : matcher;
    }

    /// <summary>
    /// Literal anchors for each known secret: its raw form (UTF-8 bytes read as Latin-1, like bodies) and its
    /// base64 / base64url forms as built by the shared <see cref="Matching.RealValueMatcher"/> (whole encoding and the
    /// stable middle at each of the three byte alignments).
    /// </summary>
    internal static (string[] Raw, string[] Encoded) BuildSecretAnchors(IReadOnlyList<KnownSecret> secrets)
    {
        var raw = new HashSet<string>(StringComparer.Ordinal);
        var encoded = new HashSet<string>(StringComparer.Ordinal);
        foreach (var secret in secrets)
        {
            if (string.IsNullOrEmpty(secret.Value))
            {
                continue;
            }

            var bytes = Encoding.UTF8.GetBytes(secret.Value);
            if (bytes.Length < 4)
            {
                continue;
            }

            raw.Add(Encoding.Latin1.GetString(bytes));

            // The same base64/base64url forms the shared real-value matcher looks for.
            foreach (var form in Matching.RealValueMatcher.Base64Forms(bytes))
            {
                encoded.Add(Encoding.ASCII.GetString(form));
            }

            Array.Clear(bytes);
        }

        return ([.. raw], [.. encoded]);
    }
}

/// <summary>Per-host scan settings: exempted detectors, whether vault-secret is exempt, which policy rules apply. Read-only once built.</summary>
internal sealed record HostProfile(bool[]? Exempt, bool VaultExempt, bool[]? RuleActive, bool AnyRuleActive);
