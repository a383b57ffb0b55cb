using System.Text;
using ProxyGuard.Secrets.Tests.Support;
using static ProxyGuard.Secrets.Tests.Support.TestSecrets;

namespace ProxyGuard.Secrets.Tests;

public sealed class SubstitutionTests
{
    private readonly Substitutor _substitutor = Create();

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static string UnB64(string text) => Encoding.UTF8.GetString(Convert.FromBase64String(text));

    [Theory]
    [InlineData("Bearer ")]
    [InlineData("token ")]
    [InlineData("bearer ")]
    public void AuthorizationSchemes(string scheme)
    {
        var result = _substitutor.SubstituteHeader("Authorization", scheme + GitHubPlaceholder, "api.github.com");
        Assert.Equal(scheme + GitHubValue, result.Value);
        Assert.Equal(["github"], result.Injected);
        Assert.False(result.IsMisuse);
        Assert.True(result.Changed);
    }

    [Fact]
    public void BasicPasswordPosition()
    {
        var result = _substitutor.SubstituteHeader("Authorization", "Basic " + B64("x-access-token:" + GitHubPlaceholder), "github.com");
        Assert.StartsWith("Basic ", result.Value, StringComparison.Ordinal);
        Assert.Equal("x-access-token:" + GitHubValue, UnB64(result.Value["Basic ".Length..]));
        Assert.Equal(["github"], result.Injected);
    }

    [Fact]
    public void BasicUserPosition()
    {
        var result = _substitutor.SubstituteHeader("authorization", "basic " + B64(GitHubPlaceholder + ":x-oauth-basic"), "github.com");
        Assert.Equal(GitHubValue + ":x-oauth-basic", UnB64(result.Value["basic ".Length..]));
    }

    [Fact]
    public void BasicWithoutPaddingAndProxyAuthorization()
    {
        var encoded = B64("u:" + GitHubPlaceholder).TrimEnd('=');
        var result = _substitutor.SubstituteHeader("Proxy-Authorization", "Basic " + encoded, "github.com");
        Assert.Equal("u:" + GitHubValue, UnB64(result.Value["Basic ".Length..]));
    }

    [Fact]
    public void BasicTowardUnboundHostIsMisuse()
    {
        var original = "Basic " + B64("x-access-token:" + GitHubPlaceholder);
        var result = _substitutor.SubstituteHeader("Authorization", original, "gitlab.example");
        Assert.True(result.IsMisuse);
        Assert.Equal("github", result.MisusedSecret);
        Assert.Equal(original, result.Value);
        Assert.Empty(result.Injected);
    }

    [Fact]
    public void CustomHeader()
    {
        var result = _substitutor.SubstituteHeader("x-api-key", AiPlaceholder, "api.ai.test");
        Assert.Equal(AiValue, result.Value);
        Assert.Equal(["ai"], result.Injected);
    }

    [Fact]
    public void SeveralPlaceholdersInOneHeader()
    {
        var result = _substitutor.SubstituteHeader("X-Both", $"{GitHubPlaceholder};{GitHubPlaceholder}", "github.com");
        Assert.Equal($"{GitHubValue};{GitHubValue}", result.Value);
        Assert.Equal(["github"], result.Injected);
    }

    [Fact]
    public void HeaderWithoutPlaceholderIsUnchanged()
    {
        var result = _substitutor.SubstituteHeader("Authorization", "Basic " + B64("user:password"), "evil.test");
        Assert.False(result.IsMisuse);
        Assert.False(result.Changed);
        Assert.Equal("Basic " + B64("user:password"), result.Value);
    }

    [Fact]
    public void PlaceholderTowardUnboundHostIsMisuse()
    {
        var result = _substitutor.SubstituteHeader("Authorization", "Bearer " + GitHubPlaceholder, "evil.test");
        Assert.Equal("github", result.MisusedSecret);
        Assert.Equal("Bearer " + GitHubPlaceholder, result.Value);
        Assert.Empty(result.Injected);
    }

    [Fact]
    public void MixedBoundAndUnboundIsMisuseAndSubstitutesNothing()
    {
        var value = $"{GitHubPlaceholder} {AiPlaceholder}";
        var result = _substitutor.SubstituteHeader("X-Two", value, "api.github.com");
        Assert.Equal("ai", result.MisusedSecret);
        Assert.Equal(value, result.Value);
    }

    [Fact]
    public void LocationNotInIsMisuse()
    {
        Assert.Equal("search", _substitutor.SubstituteHeader("X-Key", QueryPlaceholder, "api.search.test").MisusedSecret);
        Assert.Equal("ai", _substitutor.SubstituteQuery("key=" + AiPlaceholder, "api.ai.test").MisusedSecret);
        var body = _substitutor.SubstituteBody(Encoding.UTF8.GetBytes("{\"t\":\"" + GitHubPlaceholder + "\"}"), "api.github.com", out var newBody);
        Assert.Equal("github", body.MisusedSecret);
        Assert.Null(newBody);
    }

    [Fact]
    public void QueryValueIsPercentEncoded()
    {
        var result = _substitutor.SubstituteQuery("?a=1&key=" + QueryPlaceholder + "&b=x+y%20z", "api.search.test");
        Assert.Equal("?a=1&key=" + Uri.EscapeDataString(QueryValue) + "&b=x+y%20z", result.Value);
        Assert.Equal(["search"], result.Injected);
        var key = result.Value.Split('&')[1]["key=".Length..];
        Assert.Equal(QueryValue, Uri.UnescapeDataString(key));
    }

    [Theory]
    [InlineData("%50G_SEARCH_IIIIJJJJKKKKLLLL")]
    [InlineData("%50%47%5F%53EARCH_IIIIJJJJKKKKLLLL")]
    [InlineData("PG%5fSEARCH%5FIIIIJJJJKKKKLLLL")]
    public void EncodedPlaceholderInQuery(string encoded)
    {
        var result = _substitutor.SubstituteQuery("q=1&key=" + encoded + "&z=%2F", "api.search.test");
        Assert.Equal("q=1&key=" + Uri.EscapeDataString(QueryValue) + "&z=%2F", result.Value);
        Assert.Equal("search", _substitutor.SubstituteQuery("key=" + encoded, "other.test").MisusedSecret);
    }

    [Fact]
    public void QueryTowardUnboundHostIsMisuse()
    {
        var result = _substitutor.SubstituteQuery("access_token=" + GitHubPlaceholder, "evil.test");
        Assert.Equal("github", result.MisusedSecret);
        Assert.Equal("access_token=" + GitHubPlaceholder, result.Value);
    }

    [Fact]
    public void QueryWithoutPlaceholderIsUnchanged()
    {
        var result = _substitutor.SubstituteQuery("?a=%41&b", "api.search.test");
        Assert.Equal("?a=%41&b", result.Value);
        Assert.False(result.Changed);
    }

    [Fact]
    public void BodyOptInRaw()
    {
        var result = _substitutor.SubstituteBody(Encoding.UTF8.GetBytes("key=" + BodyPlaceholder + "\n"), "upload.test", out var newBody);
        Assert.Equal(["upload"], result.Injected);
        Assert.Equal("key=" + BodyValue + "\n", Encoding.UTF8.GetString(newBody!));
    }

    [Fact]
    public void BodyOptInJsonEscapes()
    {
        var body = Encoding.UTF8.GetBytes("{\"token\":\"" + BodyPlaceholder + "\"}");
        _substitutor.SubstituteBody(body, "upload.test", "application/json; charset=utf-8", out var newBody);
        using var document = System.Text.Json.JsonDocument.Parse(newBody!);
        Assert.Equal(BodyValue, document.RootElement.GetProperty("token").GetString());
    }

    [Fact]
    public void BodyOptInFormEncodes()
    {
        var body = Encoding.ASCII.GetBytes("a=b&token=" + BodyPlaceholder);
        _substitutor.SubstituteBody(body, "upload.test", "application/x-www-form-urlencoded", out var newBody);
        Assert.Equal("a=b&token=" + Uri.EscapeDataString(BodyValue), Encoding.ASCII.GetString(newBody!));
    }

    [Fact]
    public void PercentEncodedBodyPlaceholderAmongOtherEscapesIsReplacedExactly()
    {
        var encoded = string.Concat(BodyPlaceholder[..3].Select(c => "%" + ((int)c).ToString("X2", System.Globalization.CultureInfo.InvariantCulture))) + BodyPlaceholder[3..];
        var body = Encoding.ASCII.GetBytes("a=%41%42%zz%&token=" + encoded + "&z=%2F%2f%");
        _substitutor.SubstituteBody(body, "upload.test", "application/x-www-form-urlencoded", out var newBody);
        Assert.Equal("a=%41%42%zz%&token=" + Uri.EscapeDataString(BodyValue) + "&z=%2F%2f%", Encoding.ASCII.GetString(newBody!));
    }

    [Fact]
    public void BodyTowardUnboundHostIsMisuse()
    {
        var result = _substitutor.SubstituteBody(Encoding.UTF8.GetBytes(BodyPlaceholder), "evil.test", out var newBody);
        Assert.Equal("upload", result.MisusedSecret);
        Assert.Null(newBody);
    }

    [Fact]
    public void BodyWithoutPlaceholderIsUnchanged()
    {
        var result = _substitutor.SubstituteBody("plain body"u8, "evil.test", out var newBody);
        Assert.False(result.IsMisuse);
        Assert.Null(newBody);
    }

    [Fact]
    public void FindPlaceholderForPathsAndHosts()
    {
        Assert.Equal("github", _substitutor.FindPlaceholder("/repos/" + GitHubPlaceholder + "/x"));
        Assert.Equal("github", _substitutor.FindPlaceholder("/x/%50G_GITHUB_AAAABBBBCCCCDDDD"));
        Assert.Null(_substitutor.FindPlaceholder("/repos/acme/widgets"));
    }

    [Fact]
    public void EmptySubstitutor()
    {
        Assert.True(Substitutor.Empty.IsEmpty);
        Assert.False(_substitutor.IsEmpty);
        Assert.Equal("Bearer x", Substitutor.Empty.SubstituteHeader("Authorization", "Bearer x", "h").Value);
        Assert.Null(Substitutor.Empty.FindRealValue("anything"));
        Assert.Null(Substitutor.Empty.ScrubBody("abc"u8));
    }

    [Fact]
    public void ConstructorRejectsDuplicatesAndOverlaps()
    {
        var value = new SecretValue("synthetic-value-000");
        Assert.Throws<ArgumentException>(() => new Substitutor(
        [
            new SecretBinding("a", "PG_A_1234567890", value, _ => true, true, true, true),
            new SecretBinding("a", "PG_B_1234567890", value, _ => true, true, true, true),
        ]));
        Assert.Throws<ArgumentException>(() => new Substitutor(
        [
            new SecretBinding("a", "PG_A_1234567890", value, _ => true, true, true, true),
            new SecretBinding("b", "PG_A_1234567890_LONGER", value, _ => true, true, true, true),
        ]));
    }
}
