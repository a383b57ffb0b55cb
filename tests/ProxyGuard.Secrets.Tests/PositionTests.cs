using System.Text;

namespace ProxyGuard.Secrets.Tests;

/// <summary>Substitution only in value positions; names and never-substituted positions are refused with their own reason.</summary>
public sealed class PositionTests
{
    private const string Value = "pos-synthetic \"v\" é";
    private const string P = "PG_POS_AAAABBBBCCCCDDDD";
    private const string Other = "PG_OTHER_EEEEFFFFGGGGHHHH";
    private static readonly SubstitutionTarget Bound = new("api.test", VerifiedTls: true);
    private static readonly SubstitutionTarget Unbound = new("evil.test", VerifiedTls: true);
    private static readonly SubstitutionTarget PlainBound = new("api.test", VerifiedTls: false);

    private static Substitutor Create(bool allowPlainHttp = false) => new(
    [
        new SecretBinding("pos", P, new SecretValue(Value), h => h == "api.test", true, true, true) { AllowPlainHttp = allowPlainHttp },
        new SecretBinding("other", Other, new SecretValue("other-synthetic-0001"), h => h == "other.test", true, true, true),
    ]);

    private static void AssertPosition(SubstitutionResult result, string reason = SubstitutionReasons.PlaceholderPosition)
    {
        Assert.True(result.IsMisuse);
        Assert.Equal("pos", result.MisusedSecret);
        Assert.Equal(reason, result.Reason);
        Assert.Empty(result.Injected);
        Assert.DoesNotContain("pos-synthetic", result.Value, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(P + "=1")]
    [InlineData("a=1&" + P + "=2")]
    [InlineData("a=1&" + P)]
    [InlineData("x" + P + "y=2")]
    [InlineData("%50G_POS_AAAABBBBCCCCDDDD=1")]
    [InlineData("a=" + P + "&" + P + "=b")]
    public void QueryNameIsPlaceholderPosition(string query)
    {
        AssertPosition(Create().SubstituteQuery(query, Bound));
        AssertPosition(Create().SubstituteQuery(query, Unbound), SubstitutionReasons.SecretMisuse);
    }

    [Fact]
    public void QueryValueIsSubstituted()
    {
        var result = Create().SubstituteQuery("a=b&" + P + "x=" + "c&k=" + P, Bound);
        Assert.True(result.IsMisuse); // the name "PG_...x" still carries the placeholder
        var ok = Create().SubstituteQuery("a=b&k=" + P + "&z", Bound);
        Assert.False(ok.IsMisuse);
        Assert.Equal("a=b&k=" + Uri.EscapeDataString(Value) + "&z", ok.Value);
        Assert.Null(ok.Reason);
    }

    [Fact]
    public void HeaderNameIsPlaceholderPosition()
    {
        AssertPosition(Create().SubstituteHeader("X-" + P, "v", Bound));
        AssertPosition(Create().SubstituteHeader(P, "v", Bound));
        AssertPosition(Create().SubstituteHeader("X-" + P, "v", Unbound), SubstitutionReasons.SecretMisuse);
        Assert.Equal(Value, Create().SubstituteHeader("X-Api-Key", P, Bound).Value);
    }

    [Fact]
    public void CookieNameIsPlaceholderPositionCookieValueIsSubstituted()
    {
        AssertPosition(Create().SubstituteHeader("Cookie", "a=1; " + P + "=2", Bound));
        AssertPosition(Create().SubstituteHeader("cookie", P, Bound));
        var ok = Create().SubstituteHeader("Cookie", "a=1; session=" + P, Bound);
        Assert.False(ok.IsMisuse);
        Assert.Equal("a=1; session=" + Value, ok.Value);
    }

    [Fact]
    public void FormFieldNameIsPlaceholderPosition()
    {
        var form = Encoding.ASCII.GetBytes("a=1&" + P + "=2");
        AssertPosition(Create().SubstituteBody(form, "application/x-www-form-urlencoded", Bound, out var none));
        Assert.Null(none);
        var ok = Create().SubstituteBody(Encoding.ASCII.GetBytes("a=1&token=" + P), "application/x-www-form-urlencoded", Bound, out var body);
        Assert.False(ok.IsMisuse);
        Assert.Equal("a=1&token=" + Uri.EscapeDataString(Value), Encoding.ASCII.GetString(body!));
    }

    [Theory]
    [InlineData("{\"" + P + "\":\"x\"}")]
    [InlineData("{\"a\":{\"k" + P + "\" : 1}}")]
    [InlineData("[{\"a\":\"\\\"\",\"" + P + "\"\n:true}]")]
    public void JsonKeyIsPlaceholderPosition(string json)
    {
        AssertPosition(Create().SubstituteBody(Encoding.UTF8.GetBytes(json), "application/json", Bound, out var none));
        Assert.Null(none);
    }

    [Fact]
    public void JsonStringValueIsSubstitutedEscaped()
    {
        var ok = Create().SubstituteBody(Encoding.UTF8.GetBytes("{\"token\":\"" + P + "\",\"n\":[\"" + P + "\"]}"), "application/json; charset=utf-8", Bound, out var body);
        Assert.False(ok.IsMisuse);
        var text = Encoding.UTF8.GetString(body!);
        Assert.Equal(Value, System.Text.Json.JsonDocument.Parse(text).RootElement.GetProperty("token").GetString());
    }

    [Theory]
    [InlineData("form-data; name=\"" + P + "\"")]
    [InlineData("form-data; name=\"file\"; filename=\"" + P + ".txt\"")]
    public void MultipartNameAndFileNameArePlaceholderPosition(string disposition)
    {
        var body = Encoding.UTF8.GetBytes("--XyZ\r\nContent-Disposition: " + disposition + "\r\n\r\nhello\r\n--XyZ--\r\n");
        AssertPosition(Create().SubstituteBody(body, "multipart/form-data; boundary=XyZ", Bound, out var none));
        Assert.Null(none);
    }

    [Fact]
    public void MultipartPartBodyIsSubstituted()
    {
        var body = Encoding.UTF8.GetBytes("--XyZ\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n" + P + "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\nx\r\n--XyZ--\r\n");
        var ok = Create().SubstituteBody(body, "multipart/form-data; boundary=\"XyZ\"", Bound, out var newBody);
        Assert.False(ok.IsMisuse);
        Assert.Contains("\r\n\r\n" + Value + "\r\n--XyZ", Encoding.UTF8.GetString(newBody!), StringComparison.Ordinal);

        // No readable boundary: fail closed.
        AssertPosition(Create().SubstituteBody(body, "multipart/form-data", Bound, out _));
    }

    [Fact]
    public void PlainHttpIsRefusedUnlessTheSecretOptsIn()
    {
        AssertPosition(Create().SubstituteHeader("Authorization", "Bearer " + P, PlainBound), SubstitutionReasons.PlainHttp);
        AssertPosition(Create().SubstituteQuery("k=" + P, PlainBound), SubstitutionReasons.PlainHttp);
        AssertPosition(Create().SubstituteBody(Encoding.ASCII.GetBytes(P), "text/plain", PlainBound, out _), SubstitutionReasons.PlainHttp);
        AssertPosition(Create().SubstituteHeader("Authorization", "Basic " + Convert.ToBase64String(Encoding.ASCII.GetBytes("u:" + P)), PlainBound), SubstitutionReasons.PlainHttp);

        var opted = Create(allowPlainHttp: true).SubstituteHeader("Authorization", "Bearer " + P, PlainBound);
        Assert.False(opted.IsMisuse);
        Assert.Equal("Bearer " + Value, opted.Value);

        // An unbound host stays secret-misuse, plain or not.
        AssertPosition(Create().SubstituteHeader("X-Key", P, new SubstitutionTarget("evil.test", false)), SubstitutionReasons.SecretMisuse);
    }

    [Theory]
    [InlineData(P)]
    [InlineData("/v1/%50G_POS_AAAABBBBCCCCDDDD/x")]
    [InlineData("/v1/%50%47%5f%50%4F%53_AAAABBBBCCCCDDDD")]
    [InlineData("u=" + "UEdfUE9TX0FBQUFCQkJCQ0NDQ0REREQ")]
    [InlineData("x" + "QUFBQUJCQkJDQ0NDRERERA")]
    public void ContainsPlaceholderSeesEncodedForms(string text)
    {
        var substitutor = Create();
        if (text.StartsWith('x'))
        {
            // base64 of "AAAABBBBCCCCDDDD" alone is not the placeholder: must not match.
            Assert.False(substitutor.ContainsPlaceholder(text));
            return;
        }

        Assert.True(substitutor.ContainsPlaceholder(text));
        Assert.True(substitutor.ContainsPlaceholder(Encoding.UTF8.GetBytes(text)));
        AssertPosition(substitutor.CheckUnsubstituted(text, Bound));
        AssertPosition(substitutor.CheckUnsubstituted(text, Unbound), SubstitutionReasons.SecretMisuse);
    }

    [Fact]
    public void Base64PlaceholderAtEveryAlignmentIsSeen()
    {
        var substitutor = Create();
        for (var prefix = 0; prefix < 3; prefix++)
        {
            var encoded = Convert.ToBase64String(Encoding.ASCII.GetBytes(new string('u', prefix) + ":" + P + "@h"));
            Assert.True(substitutor.ContainsPlaceholder("#frag=" + encoded), encoded);
            Assert.True(substitutor.ContainsPlaceholder(encoded.Replace('+', '-').Replace('/', '_').TrimEnd('=')));
        }

        Assert.False(substitutor.ContainsPlaceholder("/v1/PG_POS_AAAABBBBCCCCDDDE"));
        Assert.False(substitutor.CheckUnsubstituted("GET", Bound).IsMisuse);
    }
}
