using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ProxyGuard.Engine.Connect;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Tests.Support;

/// <summary>Builds exchanges the way the request delegate does, on a <see cref="DefaultHttpContext"/>.</summary>
internal static class TestExchanges
{
    public static readonly IPAddress Remote = IPAddress.Parse("10.1.2.3");

    public static TunnelTarget Tunnel(string host = TestSnapshots.BoundHost, int port = 443, string? clientId = null) =>
        new(host, port, clientId, TunnelMode.Intercept, "api-all");

    /// <summary>
    /// A context with the raw target, headers, protocol and (optionally) the TLS server name; the connection feature
    /// carries <paramref name="tunnel"/> (null: a plain proxy request).
    /// </summary>
    public static DefaultHttpContext Context(
        string method, string rawTarget, TunnelTarget? tunnel, string? sni = null, string protocol = "HTTP/1.1",
        params (string Name, string Value)[] headers)
    {
        var context = new DefaultHttpContext();
        var request = context.Request;
        request.Method = method;
        request.Protocol = protocol;
        context.Features.Get<IHttpRequestFeature>()!.RawTarget = rawTarget;
        foreach (var group in headers.GroupBy(h => h.Name, StringComparer.OrdinalIgnoreCase))
        {
            request.Headers[group.Key] = group.Select(h => h.Value).ToArray();
        }

        if (sni is not null)
        {
            context.Features.Set<ITlsHandshakeFeature>(new FakeTls(sni));
        }

        context.Features.Set(new ProxyConnectionFeature(Remote, tunnel));
        return context;
    }

    public static ProxyExchange Exchange(ProxySnapshot snapshot, HttpContext context) =>
        new(snapshot, context, context.Features.Get<ProxyConnectionFeature>(), 0);

    /// <summary>An exchange with a ready request view (for the stages after the target stage).</summary>
    public static ProxyExchange WithView(
        ProxySnapshot snapshot, string method, string scheme, string host, int port, string rawPath, string rawQuery = "",
        IReadOnlyList<KeyValuePair<string, string>>? headers = null, byte[]? body = null, string? clientId = null, bool upgrade = false)
    {
        var exchange = new ProxyExchange(snapshot, null, null, 0);
        exchange.View = new RequestView(method, new RequestTarget(scheme, host, port, rawPath, rawQuery), headers ?? [], clientId) { Upgrade = upgrade };
        if (body is not null)
        {
            exchange.View.SetBody(body);
        }

        return exchange;
    }

    public static KeyValuePair<string, string> H(string name, string value) => new(name, value);

    /// <summary>
    /// Proxy services for the target stage, which only calls <see cref="ProxyServices.Identify"/> (a function of the
    /// snapshot). Building real services needs a CA, an event store and a policy file, none of which the stage reads.
    /// </summary>
    public static ProxyServices Services() => (ProxyServices)RuntimeHelpers.GetUninitializedObject(typeof(ProxyServices));

    private sealed class FakeTls(string hostName) : ITlsHandshakeFeature
    {
        public SslProtocols Protocol => SslProtocols.Tls13;

        public string HostName => hostName;

#pragma warning disable SYSLIB0058 // members of the interface
        public CipherAlgorithmType CipherAlgorithm => CipherAlgorithmType.Aes256;

        public int CipherStrength => 256;

        public HashAlgorithmType HashAlgorithm => HashAlgorithmType.Sha384;

        public int HashStrength => 384;

        public ExchangeAlgorithmType KeyExchangeAlgorithm => ExchangeAlgorithmType.None;

        public int KeyExchangeStrength => 0;
#pragma warning restore SYSLIB0058
    }
}
