using System.Text;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Tests.Support;
using static ProxyGuard.Engine.Tests.Support.TestExchanges;
using static ProxyGuard.Engine.Tests.Support.TestSnapshots;

namespace ProxyGuard.Engine.Tests.Pipeline.Stages;

public sealed class SubstitutionStageTests
{
    private static ProxyExchange Https(string host = BoundHost, string query = "", KeyValuePair<string, string>[]? headers = null, byte[]? body = null) =>
        WithView(Enforce, "POST", "https", host, 443, "/v1", query, headers, body);

    [Fact]
    public void Header_placeholder_is_substituted_toward_the_bound_host_only_in_the_outgoing_request()
    {
        var exchange = Https(headers: [H("Authorization", "Bearer " + ApiPlaceholder), H("Accept", "*/*")]);
        Assert.Null(new SubstitutionStage(null).Run(exchange));
        Assert.Equal(new[] { "Bearer " + ApiReal }, exchange.Outgoing.ChangedHeaders["Authorization"]);
        Assert.False(exchange.Outgoing.ChangedHeaders.ContainsKey("Accept"));
        Assert.Equal("Bearer " + ApiPlaceholder, exchange.View.Header("Authorization")); // the view keeps what was sent
        Assert.Equal(new[] { "api" }, exchange.Injected);
        Assert.True(exchange.Outgoing.AskIdentityEncoding);
    }

    [Fact]
    public void Basic_credentials_are_decoded_substituted_and_reencoded()
    {
        var exchange = Https(headers: [H("Authorization", "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("user:" + ApiPlaceholder)))]);
        Assert.Null(new SubstitutionStage(null).Run(exchange));
        var sent = exchange.Outgoing.ChangedHeaders["Authorization"][0];
        Assert.StartsWith("Basic ", sent, StringComparison.Ordinal);
        Assert.Equal("user:" + ApiReal, Encoding.UTF8.GetString(Convert.FromBase64String(sent[6..])));
    }

    [Fact]
    public void Query_value_placeholder_is_substituted_and_the_view_keeps_the_placeholder()
    {
        var exchange = Https(query: "a=1&k=" + ApiPlaceholder);
        Assert.Null(new SubstitutionStage(null).Run(exchange));
        Assert.Equal("a=1&k=" + Uri.EscapeDataString(ApiReal), exchange.Outgoing.RawQuery);
        Assert.Equal("a=1&k=" + ApiPlaceholder, exchange.View.Target.RawQuery);
        Assert.Equal(new[] { "api" }, exchange.Injected);
    }

    [Fact]
    public void Body_placeholder_is_substituted_for_a_body_secret()
    {
        var sent = Encoding.UTF8.GetBytes("token=" + BodyPlaceholder);
        var exchange = Https(headers: [H("Content-Type", "text/plain")], body: sent);
        Assert.Null(new SubstitutionStage(null).Run(exchange));
        Assert.Equal("token=" + BodyReal, Encoding.UTF8.GetString(exchange.Outgoing.Body!.Value.Span));
        Assert.False(exchange.Outgoing.BodyDecoded);
        Assert.Equal(sent, exchange.View.Body!.Value.ToArray());
        Assert.Equal(new[] { "bodysecret" }, exchange.Injected);
    }

    [Fact]
    public void Nothing_to_substitute_changes_nothing()
    {
        var exchange = Https(query: "a=1", headers: [H("Authorization", "Bearer x")], body: "b"u8.ToArray());
        Assert.Null(new SubstitutionStage(null).Run(exchange));
        Assert.Empty(exchange.Outgoing.ChangedHeaders);
        Assert.Equal("a=1", exchange.Outgoing.RawQuery);
        Assert.Null(exchange.Outgoing.Body);
        Assert.Empty(exchange.Injected);
        Assert.False(exchange.Outgoing.AskIdentityEncoding);
    }

    [Fact]
    public void Placeholder_toward_an_unbound_host_is_misuse_and_nothing_is_substituted()
    {
        var exchange = Https(host: "other.example.org", headers: [H("Authorization", "Bearer " + ApiPlaceholder)]);
        var denial = new SubstitutionStage(null).Run(exchange);
        Assert.Equal("secret-misuse", denial?.Reason);
        Assert.Equal(403, denial!.Status);
        Assert.Contains("other.example.org", denial.Message, StringComparison.Ordinal);
        Assert.Empty(exchange.Outgoing.ChangedHeaders);
        Assert.Empty(exchange.Injected);
    }

    [Fact]
    public void Placeholder_in_a_location_its_secret_is_not_bound_to_is_misuse()
    {
        // api is bound to headers and query, not body; bodysecret only to body.
        Assert.Equal("secret-misuse", new SubstitutionStage(null).Run(Https(body: Encoding.UTF8.GetBytes("x=" + ApiPlaceholder)))?.Reason);
        Assert.Equal("secret-misuse", new SubstitutionStage(null).Run(Https(headers: [H("X-Key", BodyPlaceholder)]))?.Reason);
        Assert.Equal("secret-misuse", new SubstitutionStage(null).Run(Https(query: "k=" + BodyPlaceholder))?.Reason);
    }

    [Fact]
    public void Query_misuse_toward_an_unbound_host_keeps_the_query()
    {
        var exchange = Https(host: "other.example.org", query: "k=" + ApiPlaceholder);
        Assert.Equal("secret-misuse", new SubstitutionStage(null).Run(exchange)?.Reason);
        Assert.Equal("k=" + ApiPlaceholder, exchange.Outgoing.RawQuery);
    }

    [Fact]
    public void Proxy_authorization_is_never_substituted()
    {
        var exchange = Https(headers: [H("Proxy-Authorization", "Bearer " + ApiPlaceholder)]);
        Assert.Null(new SubstitutionStage(null).Run(exchange));
        Assert.Empty(exchange.Outgoing.ChangedHeaders);
    }

    [Fact]
    public void Substitution_works_on_what_earlier_stages_left_outgoing()
    {
        // A redacted header value (content stage) is what gets substituted, not the view's value.
        var exchange = Https(headers: [H("X-Key", ApiPlaceholder)]);
        exchange.Outgoing.SetHeader("X-Key", ["redacted-by-content " + ApiPlaceholder]);
        Assert.Null(new SubstitutionStage(null).Run(exchange));
        Assert.Equal(new[] { "redacted-by-content " + ApiReal }, exchange.Outgoing.ChangedHeaders["X-Key"]);
    }

    [Fact]
    public void Injected_secret_names_are_recorded_once()
    {
        var exchange = Https(query: "a=" + ApiPlaceholder, headers: [H("X-Key", ApiPlaceholder), H("X-Other", ApiPlaceholder)]);
        Assert.Null(new SubstitutionStage(null).Run(exchange));
        Assert.Equal(new[] { "api" }, exchange.Injected);
    }
}
