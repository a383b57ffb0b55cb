using System.Globalization;
using System.Net;
using System.Text;
using ProxyGuard.FunctionalTests.AntiBypass;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// Strict framing (SPEC 4.2, issue class 9) through the running proxy with raw sockets: request heads that
/// Kestrel accepts but normalises before the proxy's pipeline runs (it drops Content-Length when Transfer-Encoding
/// is present, reads "+5" as 5, and replaces an HTTP/2 host header with :authority) are refused with a reason and
/// an event, and the origin never sees them. Heads Kestrel refuses itself are shown refused too.
/// </summary>
[Collection("proxy")]
public sealed class StrictFramingTests : IClassFixture<IdentityFixture>
{
    private readonly IdentityFixture _f;

    public StrictFramingTests(IdentityFixture fixture)
    {
        _f = fixture;
    }

    /// <summary>{T} target prefix, {H} Host, {M} marker. Every case is refused by the proxy's strict stage.</summary>
    public static TheoryData<string, string> RefusedByTheProxy() => new()
    {
        { "cl-then-te", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" },
        { "te-then-cl", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n" },
        { "cl-zero-with-te", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" },
        { "cl-lowercase-with-te", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" },
        { "cl-plus", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: +5\r\n\r\nhello" },
        { "cl-minus-zero", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: -0\r\n\r\n" },
        { "cl-leading-zero", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 05\r\n\r\nhello" },
        { "cl-plus-after-good-request", "GET {T}/echo/{M}-ok HTTP/1.1\r\nHost: {H}\r\n\r\nPOST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: +5\r\n\r\nhello" },
        { "te-after-chunked-request", "POST {T}/echo/{M}-ok HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nPOST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" },
    };

    /// <summary>Forms Kestrel's own parser refuses with 400 before the proxy's pipeline (no proxy reason header).</summary>
    public static TheoryData<string, string> RefusedByKestrel() => new()
    {
        { "cl-minus-one", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: -1\r\n\r\nhello" },
        { "cl-same-list", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5, 5\r\n\r\nhello" },
        { "cl-different-list", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5,6\r\n\r\nhello" },
        { "cl-inner-space", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5 5\r\n\r\nhello" },
        { "cl-hex", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 0x5\r\n\r\nhello" },
        { "cl-twice-same", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" },
        { "te-not-chunked-with-cl", "POST {T}/echo/{M} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\nhello" },
    };

    [Theory]
    [MemberData(nameof(RefusedByTheProxy))]
    public async Task Plain_http_ambiguous_length_is_refused_with_a_reason(string name, string template)
    {
        var before = await CountAsync("ambiguous-length");
        var (marker, response) = await SendPlainAsync(name, template);
        await AssertRefusedByProxyAsync(marker, response, "ambiguous-length", before);
    }

    [Theory]
    [MemberData(nameof(RefusedByTheProxy))]
    public async Task Intercepted_ambiguous_length_is_refused_with_a_reason(string name, string template)
    {
        var before = await CountAsync("ambiguous-length");
        var (marker, response) = await SendTunnelAsync(name, template);
        await AssertRefusedByProxyAsync(marker, response, "ambiguous-length", before);
    }

    [Theory]
    [MemberData(nameof(RefusedByKestrel))]
    public async Task Plain_http_lengths_kestrel_refuses_never_reach_the_origin(string name, string template)
    {
        var (marker, response) = await SendPlainAsync(name, template);
        AssertRefusedByKestrel(marker, response);
    }

    [Theory]
    [MemberData(nameof(RefusedByKestrel))]
    public async Task Intercepted_lengths_kestrel_refuses_never_reach_the_origin(string name, string template)
    {
        var (marker, response) = await SendTunnelAsync(name, template);
        AssertRefusedByKestrel(marker, response);
    }

    /// <summary>
    /// The guard follows bodies as Kestrel frames them: a body whose bytes look like an ambiguous head, chunked
    /// bodies with extensions and trailers, and canonical lengths with OWS all pass, pipelined on one connection.
    /// </summary>
    [Fact]
    public async Task Canonical_framing_is_served_on_one_connection()
    {
        var marker = "framing-ok-" + Guid.NewGuid().ToString("N")[..8];
        var authority = $"origin.test:{_f.Http.ToString(CultureInfo.InvariantCulture)}";
        var inner = "POST /x HTTP/1.1\r\nContent-Length: +1\r\nTransfer-Encoding: chunked\r\n\r\n";
        var raw =
            $"POST http://{authority}/echo/{marker}-a HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {Encoding.ASCII.GetByteCount(inner)}\r\n\r\n{inner}" +
            $"POST http://{authority}/echo/{marker}-b HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: chunked\r\n\r\n4;name=value\r\nabcd\r\n0\r\nX-T: 1\r\n\r\n" +
            $"POST http://{authority}/echo/{marker}-c HTTP/1.1\r\nHost: {authority}\r\nContent-Length:\t0 \r\n\r\n" +
            $"\r\nGET http://{authority}/echo/{marker}-d HTTP/1.1\r\nHost: {authority}\r\n\r\n";
        await using var connection = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
        await connection.SendAsync(raw);
        var response = await connection.ReadAvailableAsync(TimeSpan.FromSeconds(3));
        Assert.Equal([200, 200, 200, 200], RawConnection.Statuses(response));
        foreach (var suffix in new[] { "-a", "-b", "-c", "-d" })
        {
            Assert.True(_f.OriginSaw(marker + suffix), suffix + ": " + response);
        }
    }

    /// <summary>HTTP/2 inside a tunnel: :authority names the tunnel target but host names another allowed host.</summary>
    [Fact]
    public async Task Http2_authority_and_host_that_disagree_are_refused()
    {
        var marker = "h2-authority-" + Guid.NewGuid().ToString("N")[..8];
        var authority = $"origin.test:{_f.Https.ToString(CultureInfo.InvariantCulture)}";
        await using var connection = await RawConnection.OpenTunnelAsync(_f.Proxy.ProxyUrl, authority, "origin.test", "h2");
        var mismatchesBefore = await CountAsync("authority-mismatch");
        var lengthsBefore = await CountAsync("ambiguous-length");
        var h2 = new RawH2(connection.Stream);
        await h2.StartAsync();

        // 1: host as a new literal (incrementally indexed, so the proxy's HPACK table must follow), disagreeing.
        await h2.SendHeadersAsync(1, endStream: true, Get(authority, $"/echo/{marker}-1"), H.Indexed("host", $"other.test:{_f.Https}"));
        // 3: host equal to :authority: served.
        await h2.SendHeadersAsync(3, endStream: true, Get(authority, $"/echo/{marker}-3"), H.Literal("host", authority));
        // 5: the disagreeing host again, now by its dynamic-table index.
        await h2.SendHeadersAsync(5, endStream: true, Get(authority, $"/echo/{marker}-5"), H.DynamicIndex(62));
        // 7: two host headers.
        await h2.SendHeadersAsync(7, endStream: true, Get(authority, $"/echo/{marker}-7"), H.Literal("host", authority), H.Literal("host", authority));
        // 9: content-length with a sign.
        await h2.SendHeadersAsync(9, endStream: false, Post(authority, $"/echo/{marker}-9"), H.Literal("content-length", "+5"));
        await h2.SendDataAsync(9, "hello"u8.ToArray(), endStream: true);

        var statuses = await h2.ReadStatusesAsync([1, 3, 5, 7, 9], TimeSpan.FromSeconds(10));
        Assert.True(statuses.Count == 5, string.Join(", ", statuses.Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.Equal(400, statuses[1]);
        Assert.Equal(200, statuses[3]);
        Assert.Equal(400, statuses[5]);
        Assert.Equal(400, statuses[7]);
        Assert.Equal(400, statuses[9]);
        Assert.False(_f.OriginSaw(marker + "-1"));
        Assert.True(_f.OriginSaw(marker + "-3"));
        Assert.False(_f.OriginSaw(marker + "-5"));
        Assert.False(_f.OriginSaw(marker + "-7"));
        Assert.False(_f.OriginSaw(marker + "-9"));
        await WaitForMoreEventsAsync("authority-mismatch", mismatchesBefore, 3);
        await WaitForMoreEventsAsync("ambiguous-length", lengthsBefore, 1);
    }

    /// <summary>Real HTTP/2 clients (Huffman strings, dynamic-table reuse across requests) are followed and served.</summary>
    [Fact]
    public async Task Http2_client_requests_are_served()
    {
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath, HttpVersion.Version20);
        for (var i = 0; i < 5; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"https://origin.test:{_f.Https}/echo/h2-client-{i}")
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new StringContent("body " + i),
            };
            request.Headers.Add("X-Repeated", "the same value on every request so that it is indexed");
            if (i == 4)
            {
                // 24 KiB of header: more than one 16 KiB frame, so the block arrives as HEADERS + CONTINUATION.
                request.Headers.Add("X-Large", new string('l', 24 * 1024));
            }

            using var response = await client.SendAsync(request);
            Assert.Equal(HttpVersion.Version20, response.Version);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    private static H[] Get(string authority, string path) =>
        [H.StaticIndex(2), H.StaticIndex(7), H.Literal(":path", path), H.Literal(":authority", authority)];

    private static H[] Post(string authority, string path) =>
        [H.StaticIndex(3), H.StaticIndex(7), H.Literal(":path", path), H.Literal(":authority", authority)];

    /// <summary>Strict refusals come before the request view is built, so their events carry the host, not the path.</summary>
    private async Task<int> CountAsync(string reason) =>
        (await _f.Proxy.EventsAsync()).Count(e => e.GetProperty("reason").GetString() == reason);

    private async Task WaitForMoreEventsAsync(string reason, int before, int expected = 1)
    {
        for (var i = 0; i < 50; i++)
        {
            if (await CountAsync(reason) >= before + expected)
            {
                return;
            }

            await Task.Delay(100);
        }

        Assert.Fail($"no new {reason} event");
    }

    private async Task<(string Marker, string Response)> SendPlainAsync(string name, string template)
    {
        var marker = name + "-plain-" + Guid.NewGuid().ToString("N")[..8];
        var authority = $"origin.test:{_f.Http.ToString(CultureInfo.InvariantCulture)}";
        await using var connection = await RawConnection.OpenAsync(_f.Proxy.ProxyUrl);
        await connection.SendAsync(Fill(template, "http://" + authority, authority, marker));
        return (marker, await connection.ReadAvailableAsync());
    }

    private async Task<(string Marker, string Response)> SendTunnelAsync(string name, string template)
    {
        var marker = name + "-tunnel-" + Guid.NewGuid().ToString("N")[..8];
        var authority = $"origin.test:{_f.Https.ToString(CultureInfo.InvariantCulture)}";
        await using var connection = await RawConnection.OpenTunnelAsync(_f.Proxy.ProxyUrl, authority, "origin.test");
        await connection.SendAsync(Fill(template, string.Empty, authority, marker));
        return (marker, await connection.ReadAvailableAsync());
    }

    private async Task AssertRefusedByProxyAsync(string marker, string response, string reason, int eventsBefore)
    {
        var statuses = RawConnection.Statuses(response);
        Assert.True(statuses.Count >= 1, response);
        Assert.Equal(400, statuses[^1]);
        Assert.Equal(reason, RawConnection.Header(response[response.LastIndexOf("HTTP/1.1 ", StringComparison.Ordinal)..], "X-ProxyGuard-Reason"));
        await Task.Delay(200);
        Assert.DoesNotContain(_f.Origin.Received, r => r.EndsWith("/echo/" + marker, StringComparison.Ordinal));
        await WaitForMoreEventsAsync(reason, eventsBefore);
    }

    private void AssertRefusedByKestrel(string marker, string response)
    {
        var statuses = RawConnection.Statuses(response);
        Assert.Equal([400], statuses);
        Assert.False(_f.OriginSaw(marker), response);
    }

    private static string Fill(string template, string targetPrefix, string host, string marker) =>
        template.Replace("{T}", targetPrefix, StringComparison.Ordinal)
            .Replace("{H}", host, StringComparison.Ordinal)
            .Replace("{M}", marker, StringComparison.Ordinal);
}
