using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using ProxyGuard.Secrets;
using Yarp.ReverseProxy.Forwarder;

namespace ProxyGuard.Engine.Forwarding;

/// <summary>
/// Header hygiene for one request: copies headers without adding <c>X-Forwarded-*</c>, drops
/// proxy-only headers, targets exactly the checked URI, and scrubs real secret values from response
/// headers.
/// </summary>
internal sealed class ProxyTransformer : HttpTransformer
{
    private readonly RequestState _state;
    private readonly Substitutor _substitutor;

    public ProxyTransformer(RequestState state, Substitutor substitutor)
    {
        _state = state;
        _substitutor = substitutor;
    }

    public override async ValueTask TransformRequestAsync(
        HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        var target = _state.Target!;
        proxyRequest.RequestUri = new Uri(
            destinationPrefix + target.RawPath + (target.RawQuery.Length > 0 ? "?" + target.RawQuery : string.Empty),
            UriKind.Absolute);
        proxyRequest.Headers.Host = null;
        proxyRequest.Headers.Remove(HeaderNames.ProxyAuthorization);
        proxyRequest.Headers.Remove("Proxy-Connection");
        proxyRequest.Headers.Remove("Forwarded");
        proxyRequest.Headers.Remove("X-Forwarded-For");
        proxyRequest.Headers.Remove("X-Forwarded-Host");
        proxyRequest.Headers.Remove("X-Forwarded-Proto");
    }

    public override async ValueTask<bool> TransformResponseAsync(
        HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var result = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        var headers = httpContext.Response.Headers;
        headers.Remove(HeaderNames.AltSvc);
        if (_substitutor.IsEmpty)
        {
            return result;
        }

        // Bodies are scrubbed as a stream whose length may change.
        headers.ContentLength = null;
        foreach (var header in headers.ToList())
        {
            var values = header.Value;
            string?[]? copy = null;
            for (var i = 0; i < values.Count; i++)
            {
                var value = values[i] ?? string.Empty;
                var scrubbed = _substitutor.ScrubText(value);
                if (!ReferenceEquals(scrubbed, value) && scrubbed != value)
                {
                    copy ??= values.ToArray();
                    copy[i] = scrubbed;
                }
            }

            if (copy is not null)
            {
                headers[header.Key] = copy;
            }
        }

        return result;
    }
}
