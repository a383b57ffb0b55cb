using System.IO.Compression;
using System.Net;
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
    private readonly RequestTarget _target;
    private readonly string _rawQuery;
    private readonly Substitutor _substitutor;

    public ProxyTransformer(RequestTarget target, string rawQuery, Substitutor substitutor)
    {
        _target = target;
        _rawQuery = rawQuery;
        _substitutor = substitutor;
    }

    public override async ValueTask TransformRequestAsync(
        HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.RequestUri = new Uri(
            destinationPrefix + _target.RawPath + (_rawQuery.Length > 0 ? "?" + _rawQuery : string.Empty),
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

        // Bodies are scrubbed as a stream whose length may change; a compressed body is decoded first
        // (the scrubber must see the plain bytes) and sent on uncompressed.
        headers.ContentLength = null;
        DecodeCompressedBody(httpContext, proxyResponse);
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

    private static void DecodeCompressedBody(HttpContext httpContext, HttpResponseMessage? proxyResponse)
    {
        var content = proxyResponse?.Content;
        if (content is null || HttpMethods.IsHead(httpContext.Request.Method)
            || content.Headers.ContentEncoding.Count != 1)
        {
            return;
        }

        Func<Stream, Stream>? decoder = content.Headers.ContentEncoding.First().Trim().ToLowerInvariant() switch
        {
            "gzip" or "x-gzip" => s => new GZipStream(s, CompressionMode.Decompress),
            "deflate" => s => new ZLibStream(s, CompressionMode.Decompress),
            "br" => s => new BrotliStream(s, CompressionMode.Decompress),
            _ => null,
        };
        if (decoder is null)
        {
            return;
        }

        var decoded = new DecodedContent(content, decoder);
        foreach (var header in content.Headers)
        {
            if (!header.Key.Equals(HeaderNames.ContentEncoding, StringComparison.OrdinalIgnoreCase)
                && !header.Key.Equals(HeaderNames.ContentLength, StringComparison.OrdinalIgnoreCase))
            {
                decoded.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }
        }

        proxyResponse!.Content = decoded;
        httpContext.Response.Headers.Remove(HeaderNames.ContentEncoding);
        httpContext.Response.Headers.Remove(HeaderNames.ContentMD5);
    }

    /// <summary>The upstream body, decompressed as it is read.</summary>
    private sealed class DecodedContent(HttpContent inner, Func<Stream, Stream> decoder) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            await SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            await using var decoded = decoder(await inner.ReadAsStreamAsync(cancellationToken));
            await decoded.CopyToAsync(stream, cancellationToken);
        }

        protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) =>
            decoder(await inner.ReadAsStreamAsync(cancellationToken));

        protected override Task<Stream> CreateContentReadStreamAsync() => CreateContentReadStreamAsync(CancellationToken.None);

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
