using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary>A <c>file:</c> secret that is rotated (file rewritten, policy reloaded) and an origin that remembers values.</summary>
public sealed class RotationFixture : OriginFixture
{
    /// <summary>The first value: quote, backslash, '&lt;', '&amp;', space and non-ASCII, so its escaped forms differ.</summary>
    public string OldValue { get; } = "rot-a\"b\\c<&d é-" + SecretForms.NewValue("old");

    public string NewValue { get; } = "rot-n\"w\\é-" + SecretForms.NewValue("new");

    public string SecretPath => Path.Combine(Dir.Path, "rotating-token");

    public CompressingOrigin Remembering { get; private set; } = null!;

    protected override string Rules => """
        rules:
          - name: origin
            hosts: [localhost]
            ports: [{HTTPS}, {REMEMBERING}]
            action: allow
        secrets:
          - name: rotating
            value: file:{PATH}
            sandbox_env: ROTATING_TOKEN
            hosts: [localhost]
            in: [headers, body]
        """.Replace("{REMEMBERING}", Remembering.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
        .Replace("{PATH}", SecretPath, StringComparison.Ordinal);

    public override async Task InitializeAsync()
    {
        WriteSecret(OldValue);
        Remembering = await CompressingOrigin.StartAsync(Pki.Issue(["localhost"]));
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await Remembering.DisposeAsync();
    }

    public void WriteSecret(string value)
    {
        var temp = SecretPath + ".tmp";
        File.WriteAllText(temp, value + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.Move(temp, SecretPath, overwrite: true);
    }

    public HttpClient Client() => ProxyClients.Create(Proxy.ProxyUrl, Env["PROXYGUARD_CA_CERT"]);
}

/// <summary>
/// Rotation through the running proxy: after the secret file is rewritten and the policy reloaded,
/// the previous value is still denied when the sandbox sends it and still scrubbed (also JSON-escaped,
/// in a compressed response) when an origin sends it back.
/// </summary>
[Collection("proxy")]
public sealed class SecretRotationTests : IClassFixture<RotationFixture>
{
    private readonly RotationFixture _f;

    public SecretRotationTests(RotationFixture fixture)
    {
        _f = fixture;
    }

    private async Task AssertOriginReceivesAsync(HttpClient client, string placeholder, string value)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, _f.HttpsUrl("/echo/rotation"))
        {
            Content = new StringContent("{\"t\":\"" + placeholder + "\"}", Encoding.UTF8, "application/json"),
        };
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var expected = "{\"t\":\"" + System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping.Encode(value) + "\"}";
        var sha = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(expected))).ToLowerInvariant();
        Assert.Equal(sha, JsonDocument.Parse(body).RootElement.GetProperty("bodySha256").GetString());

        // The echo of the substituted body comes back scrubbed (it is JSON-escaped in the echo).
        Assert.DoesNotContain(value[^12..], body, StringComparison.Ordinal);
        Assert.Contains(placeholder, body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RotatedValueStaysDeniedAndScrubbedAfterReload()
    {
        var placeholder = _f.Env["ROTATING_TOKEN"];
        using var client = _f.Client();

        // Before the rotation the old value is what the origin receives (a JSON body: the value has non-ASCII).
        await AssertOriginReceivesAsync(client, placeholder, _f.OldValue);

        _f.WriteSecret(_f.NewValue);
        using (var admin = _f.Proxy.AdminClient())
        {
            using var reload = await admin.PostAsync("api/policy/reload", null);
            Assert.True(reload.IsSuccessStatusCode, await reload.Content.ReadAsStringAsync());
        }

        // After the reload the placeholder carries the new value.
        await AssertOriginReceivesAsync(client, placeholder, _f.NewValue);

        // The sandbox sends the old (rotated) value, raw and base64: denied, nothing reaches the origin.
        foreach (var sent in new[] { _f.OldValue, Convert.ToBase64String(Encoding.UTF8.GetBytes("u:" + _f.OldValue)) })
        {
            var before = _f.Origin.Received.Count;
            using var request = new HttpRequestMessage(HttpMethod.Get, _f.HttpsUrl("/echo/old"));
            request.Headers.TryAddWithoutValidation("X-Token", Uri.EscapeDataString(sent));
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("secret-real-value", string.Join(",", response.Headers.GetValues("X-ProxyGuard-Reason")));
            Assert.Equal(before, _f.Origin.Received.Count);
        }

        // An origin that stored the old value sends it back JSON-escaped in a gzip body: scrubbed.
        _f.Remembering.Known = JsonSerializer.Serialize(_f.OldValue)[1..^1];
        var remembered = await client.GetStringAsync($"https://localhost:{_f.Remembering.Port}/gzip");
        Assert.Contains(placeholder, remembered, StringComparison.Ordinal);
        Assert.DoesNotContain(_f.OldValue[^12..], remembered, StringComparison.Ordinal);

        // ... and the new value JSON-escaped likewise.
        _f.Remembering.Known = JsonSerializer.Serialize(_f.NewValue)[1..^1];
        var current = await client.GetStringAsync($"https://localhost:{_f.Remembering.Port}/gzip");
        Assert.Contains(placeholder, current, StringComparison.Ordinal);
        Assert.DoesNotContain(_f.NewValue[^12..], current, StringComparison.Ordinal);
    }
}
