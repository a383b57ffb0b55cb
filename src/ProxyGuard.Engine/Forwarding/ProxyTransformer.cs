using System.IO.Compression;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using ProxyGuard.Inspection.Budgets;
using ProxyGuard.Policy.Decisions;
using ProxyGuard.Secrets;
using Yarp.ReverseProxy.Forwarder;

namespace ProxyGuard.Engine.Forwarding;

/// <summary>
/// Header hygiene for one request: copies headers without adding <c>X-Forwarded-*</c>, drops proxy-only headers and
/// targets exactly the checked URI. When secrets are configured, every byte that comes back is treated as a carrier:
/// the upstream's reason phrase is dropped, header and trailer values are scrubbed, a header or trailer whose name
/// carries a real value is removed, and the body is decoded (stacked codings included) so the scrubbing stream sees
/// plain bytes. A response it cannot decode is refused (<see cref="Refusal"/>).
/// </summary>
internal sealed class ProxyTransformer : HttpTransformer
{
    private readonly RequestTarget _target;
    private readonly string _rawQuery;
    private readonly Substitutor _substitutor;
    private readonly ResourceLease? _decodeLease;
    private readonly bool _boundHost;

    /// <param name="decodeLease">
    /// A lease on the process-wide decompression budget (held by the request), grown by what each response decoder
    /// may hold before it is created; null: no process-wide bound.
    /// </param>
    public ProxyTransformer(RequestTarget target, string rawQuery, Substitutor substitutor, ResourceLease? decodeLease = null)
    {
        _target = target;
        _rawQuery = rawQuery;
        _substitutor = substitutor;
        _decodeLease = decodeLease;
        _boundHost = substitutor.Bindings.Any(b => b.AppliesToHost(target.Host));
    }

    /// <summary>Set when the response could not be made safe; the body was not forwarded.</summary>
    public string? Refusal { get; private set; }

    /// <summary>Why <see cref="Refusal"/> is set: the response could not be decoded, or the decompression budget had no room.</summary>
    public Reason RefusalReason { get; private set; } = Reasons.ResponseUndecodable;

    /// <summary>
    /// What a streaming decoder may hold: brotli's window (up to 16 MiB, chosen by the upstream) or zlib's 32 KiB
    /// window, plus the stream's buffers.
    /// </summary>
    internal static long DecoderCost(string coding) => coding == "br" ? (16L * 1024 * 1024) + (64 * 1024) : 64 * 1024;

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

        // No WebSocket extension is offered upstream (permessage-deflate would hide frames from the inspection).
        proxyRequest.Headers.Remove(HeaderNames.SecWebSocketExtensions);

        // A host a secret is bound to may hold the real value (it received it substituted), and so may any host that
        // publishes what a bound API stored (a gist, a raw file, a CDN): asked for byte ranges, it would hand the value
        // back in slices shorter than any form the scrubber matches. While secrets are configured, the whole resource
        // is asked for, from every host.
        if (!_substitutor.IsEmpty)
        {
            proxyRequest.Headers.Remove(HeaderNames.Range);
            proxyRequest.Headers.Remove(HeaderNames.IfRange);
            proxyRequest.Headers.Remove("Request-Range");
        }
    }

    public override async ValueTask<bool> TransformResponseAsync(
        HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var result = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        var headers = httpContext.Response.Headers;
        headers.Remove(HeaderNames.AltSvc);
        if (proxyResponse is not null && NegotiatesExtension(proxyResponse))
        {
            // The proxy offered none: an upstream that negotiates one anyway would send frames it cannot inspect.
            // (The header's value is upstream text: it is not quoted.)
            Refusal = "the upstream negotiated a WebSocket extension (Sec-WebSocket-Extensions) that the proxy did not offer";
            return false;
        }
        if (_substitutor.IsEmpty)
        {
            return result;
        }

        // A partial response from a bound host (Range was removed, so it was not asked for) could cut a value in slices.
        if (_boundHost && proxyResponse?.StatusCode == HttpStatusCode.PartialContent)
        {
            Refusal = "a host a secret is bound to answered with part of a resource (206), which cannot be scrubbed whole";
            RefusalReason = Reasons.ResponsePartial;
            return false;
        }

        // The status line: only the code is forwarded; the client gets the standard phrase.
        if (httpContext.Features.Get<IHttpResponseFeature>() is { } responseFeature)
        {
            responseFeature.ReasonPhrase = null;
        }

        // A Transfer-Encoding other than chunked (e.g. "gzip, chunked") leaves the body encoded after de-chunking.
        if (proxyResponse?.Headers.TransferEncoding.Any(t => !t.Value.Equals("chunked", StringComparison.OrdinalIgnoreCase)) == true)
        {
            Refusal = $"the upstream used Transfer-Encoding: {proxyResponse.Headers.TransferEncoding}";
            return false;
        }

        // Bodies are scrubbed as a stream whose length may change; a compressed body is decoded first.
        headers.ContentLength = null;
        if (!DecodeBody(httpContext, proxyResponse))
        {
            return false;
        }

        Scrub(headers);
        return result;
    }

    public override async ValueTask TransformResponseTrailersAsync(
        HttpContext httpContext, HttpResponseMessage proxyResponse, CancellationToken cancellationToken)
    {
        await base.TransformResponseTrailersAsync(httpContext, proxyResponse, cancellationToken);
        if (!_substitutor.IsEmpty && httpContext.Features.Get<IHttpResponseTrailersFeature>()?.Trailers is { } trailers)
        {
            Scrub(trailers);
        }
    }

    /// <summary>The <c>Sec-WebSocket-Extensions</c> of an upgrade's answer (101, or 200 to an extended CONNECT), if any.</summary>
    private static bool NegotiatesExtension(HttpResponseMessage response) =>
        (response.StatusCode == HttpStatusCode.SwitchingProtocols
            || (response.StatusCode == HttpStatusCode.OK && response.RequestMessage?.Method == HttpMethod.Connect))
        && response.Headers.TryGetValues(HeaderNames.SecWebSocketExtensions, out var values)
        && values.Any(v => !string.IsNullOrWhiteSpace(v));

    /// <summary>Scrubs every value; removes a field whose name carries a real value (a name cannot be rewritten safely).</summary>
    private void Scrub(IHeaderDictionary headers)
    {
        foreach (var header in headers.ToList())
        {
            if (_substitutor.ScrubText(header.Key) != header.Key)
            {
                headers.Remove(header.Key);
                continue;
            }

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
    }

    /// <summary>
    /// Undoes every content-coding of the response (in reverse order: <c>gzip, br</c> is br-decoded first) so the
    /// scrubber sees plain bytes, and forwards the body uncompressed. False (with <see cref="Refusal"/>) for a coding
    /// it does not know.
    /// </summary>
    private bool DecodeBody(HttpContext httpContext, HttpResponseMessage? proxyResponse)
    {
        var content = proxyResponse?.Content;
        // Every field as received (not only those the typed header parsed), all joined: what the client would decode.
        if (content is null || HttpMethods.IsHead(httpContext.Request.Method)
            || !content.Headers.NonValidated.TryGetValues(HeaderNames.ContentEncoding, out var fields))
        {
            return true;
        }

        var codings = fields
            .SelectMany(c => c.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Select(c => c.ToLowerInvariant())
            .Where(c => c != "identity")
            .ToList();
        var decoders = new List<Func<Stream, Stream>>();
        for (var i = codings.Count - 1; i >= 0; i--)
        {
            Func<Stream, Stream>? decoder = codings[i] switch
            {
                "gzip" or "x-gzip" => s => new GZipStream(s, CompressionMode.Decompress),
                "deflate" => s => new ZLibStream(s, CompressionMode.Decompress),
                "br" => s => new BrotliStream(s, CompressionMode.Decompress),
                _ => null,
            };
            if (decoder is null)
            {
                Refusal = "the upstream used a Content-Encoding the proxy cannot decode";
                return false;
            }

            decoders.Add(decoder);
        }

        if (decoders.Count > 0 && _decodeLease is not null && !_decodeLease.TryGrow(codings.Sum(DecoderCost)))
        {
            Refusal = "the proxy is decoding as many responses as it may at once";
            RefusalReason = Reasons.OverCapacity;
            return false;
        }

        if (decoders.Count > 0)
        {
            var decoded = new DecodedContent(content, s => decoders.Aggregate(s, (inner, decode) => decode(inner)));
            foreach (var header in content.Headers)
            {
                if (!header.Key.Equals(HeaderNames.ContentEncoding, StringComparison.OrdinalIgnoreCase)
                    && !header.Key.Equals(HeaderNames.ContentLength, StringComparison.OrdinalIgnoreCase))
                {
                    decoded.Headers.TryAddWithoutValidation(header.Key, header.Value);
                }
            }

            proxyResponse!.Content = decoded;
        }

        httpContext.Response.Headers.Remove(HeaderNames.ContentEncoding);
        httpContext.Response.Headers.Remove(HeaderNames.ContentMD5);
        return true;
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
