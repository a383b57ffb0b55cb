using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;
using ProxyGuard.FunctionalTests.Secrets;
using Xunit.Abstractions;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary><see cref="SecretsFixture"/> with every built-in content detector on.</summary>
public sealed class DefectProofFixture : SecretsFixture
{
    protected override string Content => "content:\n  builtin: all\n";
}

/// <summary>
/// Issue 15's classes, each attacked through the running proxy with a policy both the current build and 2f0756f accept,
/// and judged by what the attack achieves (a value reaches the origin, the sandbox or an event; the proxy burns CPU), not
/// by reason names: with <c>PG_PROXY_DLL</c> pointing at a 2f0756f build every test here fails, and passes now, except
/// the skipped one, which records a finding still open (see docs/reliability.md, "Adversarial classes").
/// </summary>
[Collection("proxy")]
public sealed class DefectProofTests : IClassFixture<DefectProofFixture>
{
    private const string AwsKey = "AKIA" + "Z7QW4XKL2MNB5VCD";

    private readonly DefectProofFixture _f;
    private readonly ITestOutputHelper _output;

    public DefectProofTests(DefectProofFixture fixture, ITestOutputHelper output)
    {
        _f = fixture;
        _output = output;
    }

    /// <summary>
    /// Class 1: escape-heavy input (256 KiB of <c>%41</c> as text, 256 KiB of <c>\u0041</c> in JSON, a 60 KB header of
    /// <c>%41</c>) is decided within a bound of the proxy's CPU. At 2f0756f each escape re-walked up to 64 KiB: the
    /// bodies took minutes of CPU, the header about ten seconds.
    /// </summary>
    [Theory]
    [InlineData("body-percent")]
    [InlineData("body-json-unicode")]
    [InlineData("header-percent")]
    public async Task Escape_heavy_input_is_decided_within_a_CPU_bound(string shape)
    {
        using var client = _f.Client();
        client.Timeout = TimeSpan.FromSeconds(40);
        using var request = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl($"/echo/escapes-{shape}"));
        request.Content = shape switch
        {
            "body-percent" => new StringContent(Repeat("%41", 256 * 1024), Encoding.ASCII, "text/plain"),
            "body-json-unicode" => new StringContent("{\"a\":\"" + Repeat("\\u0041", 256 * 1024) + "\"}", Encoding.ASCII, "application/json"),
            _ => new StringContent("x", Encoding.ASCII, "text/plain"),
        };
        if (shape == "header-percent")
        {
            request.Headers.TryAddWithoutValidation("X-Data", Repeat("%41", 60_000));
        }

        // Warm up the same path first (connection, TLS, JIT), so the measured CPU is the scan's.
        using (var warm = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl($"/echo/escapes-warm-{shape}")) { Content = new StringContent("%41%41", Encoding.ASCII, "text/plain") })
        {
            warm.Headers.TryAddWithoutValidation("X-Data", "%41%41");
            using var warmed = await client.SendAsync(warm);
        }

        var cpuBefore = ProcessCpu(_f.Proxy.Pid);
        var wall = Stopwatch.StartNew();
        HttpStatusCode? status = null;
        try
        {
            using var response = await client.SendAsync(request);
            status = response.StatusCode;
        }
        catch (TaskCanceledException)
        {
            // The client gave up after 40 s: judged by the CPU below.
        }

        var cpu = ProcessCpu(_f.Proxy.Pid) - cpuBefore;
        _output.WriteLine($"{shape}: {(status is null ? "no answer" : ((int)status).ToString(CultureInfo.InvariantCulture))} after {wall.Elapsed.TotalSeconds:F2} s, proxy CPU {cpu.TotalSeconds:F2} s");
        Assert.True(status is not null && cpu < TimeSpan.FromSeconds(2),
            $"{shape}: {(status is null ? "no answer" : ((int)status).ToString(CultureInfo.InvariantCulture))} after {wall.Elapsed.TotalSeconds:F1} s, proxy CPU {cpu.TotalSeconds:F2} s (bound 2 s)");
    }

    /// <summary>
    /// Class 3: a cloud key as a URL path segment or as the HTTP method is scanned like any other request byte. At
    /// 2f0756f the scan covered headers, query and body only: both requests reached the origin.
    /// </summary>
    [Theory]
    [InlineData("path")]
    [InlineData("method")]
    public async Task A_credential_in_the_path_or_the_method_never_reaches_the_origin(string where)
    {
        var marker = "cred-" + where;
        using var request = where switch
        {
            "path" => new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl($"/echo/{marker}/{AwsKey}/x")),
            _ => new HttpRequestMessage(new HttpMethod(AwsKey), _f.HttpsUrl($"/echo/{marker}")),
        };
        var (response, body, _) = await _f.SendAsync(request);
        using (response)
        {
            Assert.DoesNotContain(_f.Origin.Received, r => r.Contains(marker, StringComparison.Ordinal));
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{where}: {(int)response.StatusCode} {body}");
        }
    }

    /// <summary>
    /// Class 4: an origin that returns the real value as a response header name (a valid token this time: the
    /// ResponseScrubbingTests value is not a token, so the client refuses that response on any build). At 2f0756f
    /// header names were not scrubbed and the value reached the sandbox.
    /// </summary>
    [Fact]
    public async Task A_real_value_as_a_response_header_name_never_reaches_the_sandbox()
    {
        var value = "pgsynthetic-hname-" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(10));
        var leaks = await HostileLeaksAsync(value, value, "header-name", HttpVersion.Version11);
        Assert.True(leaks.Count == 0, string.Join("\n", leaks));
    }

    /// <summary>
    /// Class 4, found while verifying: a real value that ends with whitespace, echoed by the origin in a response header
    /// or trailer. The upstream parser trims the field value; the matcher also knows each value's trimmed form, so the
    /// trimmed value is scrubbed too (it reached the sandbox before).
    /// </summary>
    [Theory]
    [InlineData("header-value", "1.1")]
    [InlineData("trailer", "2.0")]
    public async Task A_real_value_ending_in_whitespace_never_reaches_the_sandbox_trimmed(string mode, string version)
    {
        var value = "pgsynthetic-ws-" + Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(10)) + " ";
        var leaks = await HostileLeaksAsync(value, value.TrimEnd(), mode, Version.Parse(version));
        Assert.True(leaks.Count == 0, string.Join("\n", leaks));
    }

    /// <summary>
    /// Starts a hostile origin that knows <paramref name="value"/> and a proxy holding it as a secret, requests
    /// <paramref name="mode"/> with the placeholder and returns where <paramref name="lookFor"/> showed up in the response.
    /// </summary>
    private static async Task<List<string>> HostileLeaksAsync(string value, string lookFor, string mode, Version version)
    {
        using var dir = new TempDir();
        using var pki = new TestPki();
        await using var origin = HostileOrigin.Start(pki.Issue(["localhost"]));
        origin.Known = value;
        await using var proxy = await ProxyProcess.StartAsync(dir.File("proxy"), $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{pki.WriteCaPem(dir.Path)}]
            rules:
              - name: hostile
                hosts: [localhost]
                ports: [{origin.Port}]
                action: allow
            secrets:
              - name: hostile
                value: env:PG_HOSTILE_SECRET
                sandbox_env: HOSTILE_TOKEN
                hosts: [localhost]
                in: [headers]
            """, null, new Dictionary<string, string> { ["PG_HOSTILE_SECRET"] = value });
        var placeholder = (await proxy.EnvAsync())["HOSTILE_TOKEN"];
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{origin.Port}/{mode}")
        {
            Version = version,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + placeholder);
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        var text = $"HTTP/{response.Version} {(int)response.StatusCode} {response.ReasonPhrase}\n{response.Headers}{response.Content.Headers}{body}\n{response.TrailingHeaders}";
        var leaks = SecretForms.FoundIn(text, [("hostile", lookFor)]).Select(l => $"{mode}: {l} in:\n{text}").ToList();
        if (response.StatusCode != HttpStatusCode.OK || response.Version != version)
        {
            leaks.Add($"{mode}: expected HTTP/{version} 200, got:\n{text}");
        }

        return leaks;
    }

    /// <summary>
    /// Class 8: a <c>file:</c> secret rotated (file rewritten, policy reloaded). Plain ASCII values, so the escaped
    /// forms (class 4, SecretRotationTests) play no part. At 2f0756f the previous value was forgotten at once: the
    /// sandbox could send it and an origin could send it back.
    /// </summary>
    [Fact]
    public async Task A_rotated_value_stays_refused_and_scrubbed_after_a_reload()
    {
        var oldValue = SecretForms.NewValue("rotold");
        var newValue = SecretForms.NewValue("rotnew");
        using var dir = new TempDir();
        using var pki = new TestPki();
        await using var origin = await TestOrigin.StartAsync(pki.Issue(["localhost"]));
        await using var remembering = await CompressingOrigin.StartAsync(pki.Issue(["localhost"]));
        var secretPath = dir.File("rotating-token");
        void WriteSecret(string v)
        {
            File.WriteAllText(secretPath + ".tmp", v + "\n");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(secretPath + ".tmp", UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            File.Move(secretPath + ".tmp", secretPath, overwrite: true);
        }

        WriteSecret(oldValue);
        await using var proxy = await ProxyProcess.StartAsync(dir.File("proxy"), $"""
            version: 1
            default: deny
            network:
              allow_destinations: [127.0.0.0/8]
            content:
              builtin: none
            tls:
              upstream_ca_files: [{pki.WriteCaPem(dir.Path)}]
            rules:
              - name: origin
                hosts: [localhost]
                ports: [{origin.HttpsPort}, {remembering.Port}]
                action: allow
            secrets:
              - name: rotating
                value: file:{secretPath}
                sandbox_env: ROTATING_TOKEN
                hosts: [localhost]
                in: [headers]
            """);
        var placeholder = (await proxy.EnvAsync())["ROTATING_TOKEN"];
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);

        async Task AssertOriginReceives(string expected)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{origin.HttpsPort}/echo/rot");
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + placeholder);
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("Bearer " + expected, origin.ReceivedHeaders.Last()["Authorization"]);
        }

        await AssertOriginReceives(oldValue);
        WriteSecret(newValue);
        using (var admin = proxy.AdminClient())
        {
            using var reload = await admin.PostAsync("api/policy/reload", null);
            Assert.True(reload.IsSuccessStatusCode, await reload.Content.ReadAsStringAsync());
        }

        await AssertOriginReceives(newValue);

        // The sandbox sends the previous value itself: refused, nothing reaches the origin.
        var before = origin.Received.Count;
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"https://localhost:{origin.HttpsPort}/echo/rot-old"))
        {
            request.Headers.TryAddWithoutValidation("X-Token", oldValue);
            using var response = await client.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden && origin.Received.Count == before,
                $"the previous value sent by the sandbox: {(int)response.StatusCode}, origin requests {origin.Received.Count - before}");
        }

        // An origin that stored the previous value sends it back (gzip): scrubbed.
        remembering.Known = oldValue;
        var recalled = await client.GetByteArrayAsync($"https://localhost:{remembering.Port}/gzip");
        var text = Encoding.UTF8.GetString(ResponseScrubbingTests.Gunzipped(recalled));
        Assert.DoesNotContain(oldValue, text, StringComparison.Ordinal);
        Assert.Contains(placeholder, text, StringComparison.Ordinal);
    }

    /// <summary>
    /// Class 5: a placeholder used as a query parameter name toward its bound host. At 2f0756f it was substituted and
    /// the real value was recorded in the request's event (and written to the log).
    /// </summary>
    [Fact]
    public async Task A_placeholder_as_a_query_name_puts_no_real_value_in_an_event()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl($"/echo/query-name-event?{_f.ApiPlaceholder}=1&b=2"));
        var (response, body, _) = await _f.SendAsync(request);
        response.Dispose();
        await _f.Proxy.WaitForEventAsync(e => e.GetProperty("kind").GetString() == "request"
            && e.TryGetProperty("path", out var p) && p.GetString() is { } path && path.Contains("query-name-event", StringComparison.Ordinal), 10000);
        var events = string.Join("\n", (await _f.Proxy.EventsAsync()).Select(e => e.GetRawText()));
        var leaks = SecretForms.FoundIn(events, _f.RealValues).Select(l => "event " + l)
            .Concat(SecretForms.FoundIn(body, _f.RealValues).Select(l => "response " + l)).ToList();
        Assert.True(leaks.Count == 0, string.Join(", ", leaks));
    }

    /// <summary>
    /// Class 6: a placeholder in a plain <c>http://</c> request to its bound host. At 2f0756f it was substituted and the
    /// real value crossed the network in cleartext.
    /// </summary>
    [Theory]
    [InlineData("header")]
    [InlineData("query")]
    public async Task A_placeholder_over_plain_http_never_sends_the_real_value(string where)
    {
        var marker = "plain-" + where;
        using var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpUrl(where == "query" ? $"/echo/{marker}?key={_f.ApiPlaceholder}" : $"/echo/{marker}"));
        if (where == "header")
        {
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _f.ApiPlaceholder);
        }

        var (response, body, _) = await _f.SendAsync(request);
        using (response)
        {
            var received = string.Join("\n", _f.Origin.Received) + string.Join("\n", _f.Origin.ReceivedHeaders.SelectMany(h => h.Values));
            var leaks = SecretForms.FoundIn(received, _f.RealValues);
            Assert.True(leaks.Count == 0, $"{where}: the plain-http origin received {string.Join(", ", leaks)}");
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{where}: {(int)response.StatusCode} {body}");
        }
    }

    /// <summary>
    /// Class 10: a cloud key in base64 wrapped at short lines. At 2f0756f only runs of 40+ characters per line were
    /// joined, so lines of 16 or 8 hid the key.
    /// </summary>
    [Theory]
    [InlineData(16)]
    [InlineData(8)]
    public async Task A_cloud_key_in_base64_wrapped_at_short_lines_never_reaches_the_origin(int width)
    {
        var marker = $"wrapped-{width}";
        var encoded = Convert.ToBase64String(Encoding.UTF8.GetBytes($"[default]\naws_access_key_id = {AwsKey}\nregion = eu-west-1\n"));
        var wrapped = new StringBuilder("attachment:\n");
        for (var i = 0; i < encoded.Length; i += width)
        {
            wrapped.Append(encoded.AsSpan(i, Math.Min(width, encoded.Length - i))).Append('\n');
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl($"/echo/{marker}"))
        {
            Content = new StringContent(wrapped.Append("end\n").ToString(), Encoding.ASCII, "text/plain"),
        };
        var (response, body, _) = await _f.SendAsync(request);
        using (response)
        {
            Assert.DoesNotContain(_f.Origin.Received, r => r.Contains(marker, StringComparison.Ordinal));
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"width {width}: {(int)response.StatusCode} {body}");
        }
    }

    private static string Repeat(string unit, int totalLength)
    {
        var builder = new StringBuilder(totalLength + unit.Length);
        while (builder.Length < totalLength)
        {
            builder.Append(unit);
        }

        return builder.ToString();
    }

    /// <summary>User plus system CPU of a process from /proc (clock ticks of 10 ms).</summary>
    private static TimeSpan ProcessCpu(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
    }
}
