using System.Text;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Tests.Support;
using static ProxyGuard.Engine.Tests.Support.TestExchanges;
using static ProxyGuard.Engine.Tests.Support.TestSnapshots;

namespace ProxyGuard.Engine.Tests.Pipeline.Stages;

public sealed class SecretGateStageTests
{
    private static ProxyExchange Https(string method = "GET", string host = BoundHost, string path = "/v1", string query = "",
        KeyValuePair<string, string>[]? headers = null, byte[]? body = null, Runtime.ProxySnapshot? snapshot = null) =>
        WithView(snapshot ?? Enforce, method, "https", host, 443, path, query, headers, body);

    private static void AssertRefused(ProxyExchange exchange, string reason, string where, int status = 403)
    {
        var denial = SecretGateStage.Run(exchange);
        Assert.NotNull(denial);
        Assert.Equal(reason, denial.Reason);
        Assert.Equal(status, denial.Status);
        Assert.Equal("secrets", denial.Rule);
        Assert.Contains(where, denial.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(ApiReal, denial.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(ApiPlaceholder, denial.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Placeholders_in_value_positions_toward_https_pass()
    {
        var exchange = Https(query: "k=" + ApiPlaceholder, headers:
        [
            H("Authorization", "Bearer " + ApiPlaceholder),
            H("Cookie", "session=" + ApiPlaceholder),
        ], body: Encoding.UTF8.GetBytes("t=" + BodyPlaceholder));
        Assert.Null(SecretGateStage.Run(exchange));
    }

    [Fact]
    public void Placeholder_in_the_method_is_refused() => AssertRefused(Https(method: ApiPlaceholder), "placeholder-position", "the request method");

    [Fact]
    public void Placeholder_in_the_path_is_refused() => AssertRefused(Https(path: "/x/" + ApiPlaceholder), "placeholder-position", "the URL path");

    [Fact]
    public void Percent_encoded_placeholder_in_the_path_is_refused() =>
        AssertRefused(Https(path: "/x/%50" + ApiPlaceholder[1..]), "placeholder-position", "the URL path");

    [Fact]
    public void Placeholder_in_the_host_is_refused() =>
        AssertRefused(Https(host: ApiPlaceholder + ".example.com"), "placeholder-position", "the host name");

    [Fact]
    public void Placeholder_as_a_header_name_is_refused() =>
        AssertRefused(Https(headers: [H(ApiPlaceholder, "v")]), "placeholder-position", "a request header name");

    [Fact]
    public void Placeholder_as_a_query_name_is_refused() =>
        AssertRefused(Https(query: "a=1&" + ApiPlaceholder + "=1"), "placeholder-position", "a query parameter name");

    [Fact]
    public void Placeholder_as_a_bare_query_name_is_refused() =>
        AssertRefused(Https(query: ApiPlaceholder), "placeholder-position", "a query parameter name");

    [Fact]
    public void Placeholder_as_a_cookie_name_is_refused() =>
        AssertRefused(Https(headers: [H("Cookie", "a=1; " + ApiPlaceholder + "=x")]), "placeholder-position", "a cookie name");

    [Fact]
    public void Placeholder_position_is_enforced_in_audit_mode() =>
        AssertRefused(Https(path: "/" + ApiPlaceholder, snapshot: AuditMode), "placeholder-position", "the URL path");

    [Fact]
    public void Real_value_in_a_header_is_refused() =>
        AssertRefused(Https(headers: [H("Authorization", "Bearer " + ApiReal)]), "secret-real-value", "the Authorization header");

    [Fact]
    public void Real_value_base64_in_basic_credentials_is_refused() =>
        AssertRefused(Https(headers: [H("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("u:" + ApiReal)))]),
            "secret-real-value", "the Authorization header");

    [Fact]
    public void Real_value_in_the_query_is_refused() => AssertRefused(Https(query: "k=" + ApiReal), "secret-real-value", "the query string");

    [Fact]
    public void Real_value_fully_percent_encoded_in_the_path_is_refused() =>
        AssertRefused(Https(path: "/x/" + string.Concat(ApiReal.Select(c => $"%{(int)c:X2}"))), "secret-real-value", "the URL path");

    [Fact]
    public void Real_value_with_one_gratuitously_percent_encoded_character_is_refused() =>
        // %52 is 'R': a server decodes this path to the real value, as the gate already does for placeholders.
        AssertRefused(Https(path: "/x/%52" + ApiReal[1..]), "secret-real-value", "the URL path");

    [Fact]
    public void Real_value_in_the_method_is_refused() => AssertRefused(Https(method: ApiReal), "secret-real-value", "the request method");

    [Fact]
    public void Real_value_in_the_body_is_refused() =>
        AssertRefused(Https(body: Encoding.UTF8.GetBytes("{\"k\":\"" + BodyReal + "\"}")), "secret-real-value", "the request body");

    [Fact]
    public void Real_value_is_refused_toward_any_host() =>
        AssertRefused(Https(host: "other.example.org", headers: [H("X-Key", ApiReal)]), "secret-real-value", "the X-Key header");

    [Fact]
    public void Placeholder_toward_plain_http_is_refused()
    {
        var exchange = WithView(Enforce, "GET", "http", "plain.example.net", 80, "/", headers: [H("Authorization", "Bearer " + ApiPlaceholder)]);
        AssertRefused(exchange, "secret-plain-http", "plain-HTTP");
    }

    [Fact]
    public void Placeholder_in_a_query_value_toward_plain_http_is_refused() =>
        AssertRefused(WithView(Enforce, "GET", "http", "plain.example.net", 80, "/", "k=" + ApiPlaceholder), "secret-plain-http", "plain-HTTP");

    [Fact]
    public void Placeholder_in_the_body_toward_plain_http_is_refused() =>
        AssertRefused(WithView(Enforce, "POST", "http", "plain.example.net", 80, "/", body: Encoding.UTF8.GetBytes("x=" + BodyPlaceholder)),
            "secret-plain-http", "plain-HTTP");

    [Fact]
    public void Placeholder_in_basic_credentials_toward_plain_http_is_refused() =>
        AssertRefused(WithView(Enforce, "GET", "http", "plain.example.net", 80, "/",
            headers: [H("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("u:" + ApiPlaceholder)))]),
            "secret-plain-http", "plain-HTTP");

    [Fact]
    public void Placeholder_of_an_unresolvable_secret_is_503() =>
        AssertRefused(Https(headers: [H("X-Key", MissingPlaceholder)]), "secret-unavailable", "'missing'", 503);

    [Fact]
    public void Plain_request_without_placeholders_passes() =>
        Assert.Null(SecretGateStage.Run(WithView(Enforce, "GET", "http", "plain.example.net", 80, "/a", "b=c", [H("Accept", "*/*")])));

    [Theory]
    [InlineData("a=1&b&=c&d=", new[] { "a", "b", "", "d" })]
    [InlineData("x=1=2", new[] { "x" })]
    public void QueryNames_splits_names(string query, string[] names) => Assert.Equal(names, SecretGateStage.QueryNames(query));

    [Fact]
    public void QueryNames_of_an_empty_query_is_empty() => Assert.Empty(SecretGateStage.QueryNames(string.Empty));

    [Fact]
    public void CookieNames_trims_names() => Assert.Equal(new[] { "a", "b", "c" }, SecretGateStage.CookieNames("a=1;  b=2 ;c"));
}
