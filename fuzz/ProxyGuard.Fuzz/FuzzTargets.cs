using System.Buffers;
using System.Text;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Inspection;
using ProxyGuard.Policy;
using ProxyGuard.Secrets;

namespace ProxyGuard.Fuzz;

/// <summary>
/// The fuzz targets. Each takes arbitrary bytes, drives one parser or decoder, and throws
/// <see cref="FuzzInvariantException"/> when an invariant breaks; any other exception is a finding too.
/// Shared with ProxyGuard.PropertyTests, which replays the committed seed corpora through them.
/// </summary>
public static class FuzzTargets
{
    private const string BoundHost = "api.example.com";
    private const string Placeholder = "PG_SECRET_FUZZ_0123456789";
    private const string FakeValue = "fuzz-not-a-real-secret-value";

    private static readonly Lazy<ContentScanner> s_scanner = new(() => new ContentScanner(new ScannerOptions
    {
        KnownSecrets = [new KnownSecret("fuzz", FakeValue)],
        MaxDecodedBytes = 4 * 1024 * 1024,
    }));

    private static readonly Lazy<Substitutor> s_substitutor = new(() => new Substitutor(
    [
        new SecretBinding("fuzz", Placeholder, new SecretValue(FakeValue), h => h == BoundHost, InHeaders: true, InQuery: true, InBody: false),
    ]));

    private static readonly Lazy<CompiledPolicy> s_pathPolicy = new(() =>
    {
        var result = PolicyLoader.LoadText(
            """
            version: 1
            default: deny
            rules:
              - name: deny-admin
                hosts: [api.example.com]
                paths: ["/repos/*/admin/**"]
                action: deny
              - name: repos
                hosts: [api.example.com]
                methods: [GET]
                paths: ["/repos/acme/**", "/user"]
                action: allow
            """,
            "fuzz-path-policy.yaml");
        return result.Policy ?? throw new InvalidOperationException(string.Join("; ", result.Diagnostics));
    });

    /// <summary>Target name → entry point.</summary>
    public static IReadOnlyDictionary<string, Action<byte[]>> All { get; } = new Dictionary<string, Action<byte[]>>(StringComparer.Ordinal)
    {
        ["connect-head"] = ConnectHeadTarget,
        ["policy"] = PolicyTarget,
        ["host"] = HostTarget,
        ["path"] = PathTarget,
        ["scan-identity"] = data => ScanTarget(data, null),
        ["scan-gzip"] = data => ScanTarget(data, "gzip"),
        ["scan-deflate"] = data => ScanTarget(data, "deflate"),
        ["scan-br"] = data => ScanTarget(data, "br"),
        ["scan-slow"] = ScanSlowTarget,
        ["sni"] = SniTarget,
        ["basic-auth"] = BasicAuthTarget,
        ["framing-h1"] = ProtocolTargets.Http1Target,
        ["framing-h2"] = ProtocolTargets.Http2Target,
        ["hpack"] = ProtocolTargets.HpackTarget,
        ["websocket"] = ProtocolTargets.WebSocketTarget,
    };

    /// <summary>CONNECT head parser: never throws; a parsed head has a sane host and port.</summary>
    public static void ConnectHeadTarget(byte[] data)
    {
        if (ConnectHead.TryParse(new ReadOnlySequence<byte>(data), out var head, out var error))
        {
            Check(head is not null, "TryParse returned true without a head");
            Check(head!.Port is >= 1 and <= 65535, "port out of range");
            Check(head.Host.Length > 0, "empty host");
            Check(head.Host.IndexOfAny(['\r', '\n', ' ', '\0']) < 0, "host contains CR, LF, space or NUL");
        }
        else
        {
            Check(head is null && error.Length > 0, "a failed parse must carry an error and no head");
        }
    }

    /// <summary>Policy loader: never throws; a loaded policy decides without throwing.</summary>
    public static void PolicyTarget(byte[] data)
    {
        var text = Encoding.UTF8.GetString(data);
        var result = PolicyLoader.LoadText(text, "fuzz.yaml");
        if (result.Policy is { } policy)
        {
            Check(result.Diagnostics.All(d => d.ToString().Length > 0), "empty diagnostic");
            _ = policy.DecideConnect(null, "api.example.com", 443);
            _ = policy.DecideRequest(null, "https", "api.example.com", 443, "GET", "/repos/acme/x?y=1");
            _ = policy.DecideRequest(null, "http", "127.0.0.1", 80, "POST", "/%2e%2e/etc");
        }
        else
        {
            Check(result.Diagnostics.Count > 0, "a rejected policy must say why");
        }
    }

    /// <summary>Host normaliser: never throws; a normalised host is a fixed point and decides like itself.</summary>
    public static void HostTarget(byte[] data)
    {
        var host = Encoding.UTF8.GetString(data);
        if (HostNormalizer.TryNormalize(host, out var normalized, out var error))
        {
            Check(HostNormalizer.TryNormalize(normalized, out var again, out _), $"normalised form '{normalized}' does not normalise");
            Check(again == normalized, $"not a fixed point: '{normalized}' -> '{again}'");
            Check(!normalized.Any(char.IsAsciiLetterUpper), "normalised form is not lower case");
            Check(!normalized.EndsWith('.'), "normalised form ends with a dot");
            _ = HostNormalizer.TryGetAddress(normalized, out _);
        }
        else
        {
            Check(error is { Length: > 0 }, "a rejected host must carry an error");
        }
    }

    /// <summary>Path normaliser and path rules: never throws; an unambiguous normalised path is a fixed point and decides alike.</summary>
    public static void PathTarget(byte[] data)
    {
        var raw = Encoding.UTF8.GetString(data);
        var n = PathNormalizer.Normalize(raw);
        Check(n.Path.StartsWith('/'), "normalised path does not start with '/'");
        var policy = s_pathPolicy.Value;
        var decision = policy.DecideRequest(null, "https", BoundHost, 443, "GET", raw);
        if (!n.Ambiguous)
        {
            var again = PathNormalizer.Normalize(n.Path);
            Check(!again.Ambiguous && again.Path == n.Path, $"not a fixed point: '{n.Path}' -> '{again.Path}' ambiguous={again.Ambiguous}");
            var decision2 = policy.DecideRequest(null, "https", BoundHost, 443, "GET", n.Path);
            Check(decision.Allowed == decision2.Allowed && decision.Rule == decision2.Rule, "normalised path decides differently");
        }
        else
        {
            Check(!decision.Allowed, $"ambiguous path '{raw}' was allowed by a path rule");
        }
    }

    private static readonly string?[] s_contentTypes =
    [
        null,
        "text/plain",
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=XyZ",
        "multipart/mixed; boundary=\"a b\"",
        "text/plain; charset=utf-16",
        "application/octet-stream",
    ];

    /// <summary>Content scanner: first byte picks the content type; the rest is the body under <paramref name="encoding"/>.</summary>
    public static void ScanTarget(byte[] data, string? encoding)
    {
        if (data.Length == 0)
        {
            return;
        }

        var contentType = s_contentTypes[data[0] % s_contentTypes.Length];
        var body = data.AsMemory(1);
        var result = s_scanner.Value.ScanBody(body, encoding, contentType, BoundHost);
        Check(result.Error is null || result.Blocked, "an undecodable body must be blocked");
        if (result.RewrittenBody is { } rewritten)
        {
            Check(rewritten.Length >= 0, "rewritten body");
        }
    }

    /// <summary>
    /// Slow-input detector: the input (first byte: content type, the rest: a unit of at most 256 bytes) is repeated
    /// to 4 KiB and to 16 KiB and both bodies are scanned (fastest of three each). Fails when 4x the input costs
    /// more than 10x the time (super-linear scanning), or when the time per byte is more than 50x the median of the
    /// inputs seen so far in this process (a path with a huge constant). Both need at least 5 ms for the large body,
    /// so clock noise does not count.
    /// </summary>
    public static void ScanSlowTarget(byte[] data)
    {
        if (data.Length < 2)
        {
            return;
        }

        var contentType = s_contentTypes[data[0] % s_contentTypes.Length];
        var unit = data.AsSpan(1, Math.Min(256, data.Length - 1));
        var small = Repeat(unit, 4 * 1024);
        var large = Repeat(unit, 16 * 1024);
        _ = FastestScan(small, contentType, 1);
        var smallTime = FastestScan(small, contentType, 3);
        var largeTime = FastestScan(large, contentType, 3);
        if (Suspicious(smallTime, largeTime, large.Length, out _))
        {
            // Measure again, longer, before reporting: a preemption or a GC on a busy machine is not a finding.
            smallTime = Math.Min(smallTime, FastestScan(small, contentType, 7));
            largeTime = Math.Min(largeTime, FastestScan(large, contentType, 7));
            if (Suspicious(smallTime, largeTime, large.Length, out var why))
            {
                throw new FuzzInvariantException(why);
            }
        }

        RecordNsPerByte(largeTime * 1e9 / large.Length);
    }

    private const double FloorSeconds = 0.005;

    private static bool Suspicious(double smallTime, double largeTime, int largeLength, out string why)
    {
        why = string.Empty;
        if (largeTime < FloorSeconds)
        {
            return false;
        }

        var ratio = largeTime / Math.Max(smallTime, 1e-6);
        if (ratio > 10)
        {
            why = $"super-linear scan: 4 KiB {smallTime * 1e3:F2} ms, 16 KiB {largeTime * 1e3:F2} ms ({ratio:F1}x for 4x the input)";
            return true;
        }

        var nsPerByte = largeTime * 1e9 / largeLength;
        var median = Median();
        if (median > 0 && nsPerByte > 50 * median)
        {
            why = $"slow input: {nsPerByte:F0} ns/byte, median {median:F1} ns/byte";
            return true;
        }

        return false;
    }

    private static readonly List<double> s_nsPerByte = [];

    private static void RecordNsPerByte(double value)
    {
        lock (s_nsPerByte)
        {
            if (s_nsPerByte.Count >= 4096)
            {
                s_nsPerByte.RemoveAt(0);
            }

            s_nsPerByte.Add(value);
        }
    }

    /// <summary>The median time per byte of the inputs seen so far (0 until there are 64).</summary>
    private static double Median()
    {
        lock (s_nsPerByte)
        {
            if (s_nsPerByte.Count < 64)
            {
                return 0;
            }

            var sorted = s_nsPerByte.Order().ToList();
            return sorted[sorted.Count / 2];
        }
    }

    private static byte[] Repeat(ReadOnlySpan<byte> unit, int size)
    {
        var body = new byte[size - (size % unit.Length)];
        for (var i = 0; i < body.Length; i += unit.Length)
        {
            unit.CopyTo(body.AsSpan(i));
        }

        return body;
    }

    private static double FastestScan(byte[] body, string? contentType, int repeats)
    {
        var best = double.MaxValue;
        for (var i = 0; i < repeats; i++)
        {
            // Thread CPU time, not wall time: on a shared machine (CI runs test assemblies side by side) a preemption
            // between two timestamps made linear inputs look super-linear.
            var start = ProxyGuard.Inspection.Tests.Complexity.ThreadCpu.NowNanoseconds();
            var result = s_scanner.Value.ScanBody(body, null, contentType, BoundHost);
            best = Math.Min(best, (ProxyGuard.Inspection.Tests.Complexity.ThreadCpu.NowNanoseconds() - start) / 1e9);
            Check(result.Error is null || result.Blocked, "an undecodable body must be blocked");
        }

        return best;
    }

    /// <summary>ClientHello SNI parser: never throws; a name is returned only for a complete hello.</summary>
    public static void SniTarget(byte[] data)
    {
        var status = TlsClientHello.TryGetServerName(data, out var name);
        Check(name is null || status == TlsClientHello.ParseStatus.Complete, "a server name without a complete hello");
        _ = TlsClientHello.LooksLikeTls(data);
        for (var cut = 0; cut < Math.Min(data.Length, 8); cut++)
        {
            _ = TlsClientHello.TryGetServerName(data.AsSpan(0, data.Length - cut - 1), out _);
        }
    }

    /// <summary>
    /// Basic-auth substitution: first byte picks raw or base64-wrapped credentials and the host; the secret is only
    /// ever injected toward its bound host, and a placeholder elsewhere is misuse.
    /// </summary>
    public static void BasicAuthTarget(byte[] data)
    {
        if (data.Length == 0)
        {
            return;
        }

        var mode = data[0];
        var rest = Encoding.UTF8.GetString(data.AsSpan(1));
        var value = (mode & 1) == 0 ? rest : "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(rest));
        var host = (mode & 2) == 0 ? BoundHost : "evil.example.net";
        var header = (mode & 4) == 0 ? "Authorization" : "X-Api-Key";
        var result = s_substitutor.Value.SubstituteHeader(header, value, host);
        if (host != BoundHost)
        {
            Check(result.Injected.Count == 0, "a secret was injected toward an unbound host");
            Check(!result.Value.Contains(FakeValue, StringComparison.Ordinal) || value.Contains(FakeValue, StringComparison.Ordinal)
                  || DecodedContains(value, FakeValue), "the real value appeared toward an unbound host");
        }

        if (result.IsMisuse)
        {
            Check(result.Injected.Count == 0, "misuse with injection");
        }
    }

    private static bool DecodedContains(string value, string needle)
    {
        try
        {
            var space = value.IndexOf(' ', StringComparison.Ordinal);
            var b64 = space < 0 ? value : value[(space + 1)..];
            return Encoding.UTF8.GetString(Convert.FromBase64String(b64.Trim())).Contains(needle, StringComparison.Ordinal);
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new FuzzInvariantException(message);
        }
    }
}
