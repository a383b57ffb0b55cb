using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Net.Http;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// Red team round 8 (issue 15): today's new code through the real binary, real TLS and a real client, against the
/// round-7 hostile origin (<c>localhost</c> allowed and bound to no secret; <c>127.0.0.1</c> the secret's host). Open
/// findings are skipped with their id and were seen failing with the skip removed; the others are attacks that held.
/// </summary>
[Collection("proxy")]
public sealed class RedTeamRound8Tests : IClassFixture<Round7Fixture>
{
    private readonly Round7Fixture _f;

    public RedTeamRound8Tests(Round7Fixture fixture)
    {
        _f = fixture;
    }

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    /// <summary>A PutRecords-style batch: <paramref name="records"/> records, each base64 of a gzip-compressed small JSON event.</summary>
    private static string Batch(int records) => "{\"StreamName\":\"logs\",\"Records\":[" + string.Join(",", Enumerable.Range(0, records).Select(i =>
        "{\"PartitionKey\":\"p" + i.ToString(CultureInfo.InvariantCulture) + "\",\"Data\":\"" +
        Convert.ToBase64String(Gzip(Encoding.UTF8.GetBytes("{\"ts\":" + (1700000000 + i).ToString(CultureInfo.InvariantCulture) +
            ",\"level\":\"info\",\"msg\":\"request served\",\"status\":200,\"bytes\":" + (i * 37).ToString(CultureInfo.InvariantCulture) + "}"))) +
        "\"}")) + "]}";

    private async Task<(HttpStatusCode Status, bool Arrived)> PostAsync(string body, string contentType = "application/json")
    {
        var path = $"/upload/{Guid.NewGuid():N}";
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(contentType);
        using var response = await client.PostAsync(_f.Url(path), content);
        return (response.StatusCode, _f.Origin.Received.Any(r => r.Target == path));
    }

    /// <summary>
    /// FINDING R8-2 (low, availability: legitimate uploads refused): the scanner's decompression-attempt limit (64 plus one
    /// per KiB scanned) counts every compressed payload it finds, so an ordinary batch of small compressed records (a
    /// Kinesis/Firehose <c>PutRecords</c> of gzip-compressed log events, a CloudWatch Logs subscription payload, a
    /// batch of compressed cache entries) with more records than its size in KiB plus 64 is refused. Measured here:
    /// 40 records (about 6 KiB) go through, 400 records (62 KiB) are refused with 403 and never reach the origin
    /// (400 attempts against an allowance of about 64 + 62 + the decoded KiB; the event's reason was not read).
    /// It fails closed (the limit cannot make the proxy skip the scan), but any client that batches small compressed
    /// records is cut off, and past the limit the proxy does not say which records it could not read.
    /// </summary>
    [Fact(Skip = "open R8-2: a batch of many small gzip+base64 records exceeds the decompression-attempt limit and is refused")]
    public async Task A_batch_of_many_small_compressed_records_is_scanned_and_forwarded()
    {
        var small = await PostAsync(Batch(40));
        Assert.Equal(HttpStatusCode.OK, small.Status); // control: under the limit
        var body = Batch(400);
        var large = await PostAsync(body);
        Assert.True(large.Status == HttpStatusCode.OK && large.Arrived,
            $"a {body.Length}-byte batch of 400 compressed records was refused ({(int)large.Status}, arrived={large.Arrived})");
    }

    /// <summary>
    /// HELD: past the decompression-attempt limit the proxy does not forward unscanned: an AWS key in the last
    /// compressed record of an oversized batch never reaches the origin.
    /// </summary>
    [Fact]
    public async Task A_key_after_the_decompression_attempt_limit_never_reaches_the_origin()
    {
        var key = "AKIA" + "Z7QW4XKL2MNB5VCD";
        var batch = Batch(400);
        var last = Convert.ToBase64String(Gzip(Encoding.UTF8.GetBytes("{\"aws_access_key_id\":\"" + key + "\"}")));
        var body = batch[..^2] + ",{\"PartitionKey\":\"k\",\"Data\":\"" + last + "\"}]}";
        var (status, arrived) = await PostAsync(body);
        Assert.False(arrived, $"the batch with the key reached the origin ({(int)status})");
        Assert.NotEqual(HttpStatusCode.OK, status);
    }

    private string Form(string kind)
    {
        var v = _f.Value;
        string B64(byte[] b) => Convert.ToBase64String(b);
        return kind switch
        {
            "base64-of-base64" => B64(Encoding.ASCII.GetBytes(B64(Encoding.ASCII.GetBytes(v)))),
            "utf16le-base64" => B64(Encoding.Unicode.GetBytes("$t='" + v + "'")),
            "utf16le-raw" => Encoding.Latin1.GetString(Encoding.Unicode.GetBytes(v)),
            "percent-u" => string.Concat(v.Select(c => "%u" + ((int)c).ToString("X4", CultureInfo.InvariantCulture))),
            "js-braces" => string.Concat(v.Select(c => "\\u{" + ((int)c).ToString("x", CultureInfo.InvariantCulture) + "}")),
            "css" => string.Concat(v.Select(c => "\\" + ((int)c).ToString("x", CultureInfo.InvariantCulture) + " ")),
            "octal" => string.Concat(v.Select(c => "\\" + Convert.ToString(c, 8).PadLeft(3, '0'))),
            "overlong" => string.Concat(v.Select(c => "%" + (0xC0 | (c >> 6)).ToString("X2", CultureInfo.InvariantCulture) + "%" + (0x80 | (c & 0x3F)).ToString("X2", CultureInfo.InvariantCulture))),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
    }

    /// <summary>
    /// HELD: the real value in each of the round-6 forms, sent toward a host it is not bound to (exfiltration of a value
    /// the sandbox learned), is refused before it reaches the origin.
    /// </summary>
    [Theory]
    [InlineData("base64-of-base64")]
    [InlineData("utf16le-base64")]
    [InlineData("utf16le-raw")]
    [InlineData("percent-u")]
    [InlineData("js-braces")]
    [InlineData("css")]
    [InlineData("octal")]
    [InlineData("overlong")]
    public async Task The_real_value_in_a_new_form_toward_an_unbound_host_never_reaches_it(string kind)
    {
        var path = $"/upload/{Guid.NewGuid():N}";
        using var client = ProxyClients.Create(_f.Proxy.ProxyUrl, _f.Proxy.CaPath);
        using var content = new ByteArrayContent(Encoding.Latin1.GetBytes("{\"note\":\"" + Form(kind) + "\"}"));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var response = await client.PostAsync(_f.Url(path), content);
        var arrived = _f.Origin.Received.Any(r => r.Target == path);
        Assert.False(arrived, $"{kind}: the real value reached an unbound host ({(int)response.StatusCode})");
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }
}
