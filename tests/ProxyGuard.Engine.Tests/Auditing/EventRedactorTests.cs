using System.Text;
using ProxyGuard.Engine.Auditing;
using ProxyGuard.Engine.Tests.Support;
using static ProxyGuard.Engine.Tests.Support.TestSnapshots;

namespace ProxyGuard.Engine.Tests.Auditing;

public sealed class EventRedactorTests
{
    private static readonly EventRedactor Redactor = new(Enforce);

    [Theory]
    [InlineData("/x/" + ApiPlaceholder + "/y", "", "/x/[redacted]/y")]
    [InlineData("/x/pre-" + ApiPlaceholder + "-post", "", "/x/[redacted]")]
    [InlineData("/x/%50G_TEST_API_PLACEHOLDER_0001", "", "/x/[redacted]")]
    [InlineData("/x/" + ApiReal, "", "/x/[redacted]")]
    [InlineData("/x/" + MissingPlaceholder, "", "/x/[redacted]")] // an unresolvable secret's placeholder too
    [InlineData("/x", ApiPlaceholder + "=1", "/x?[redacted]=")]
    [InlineData("/x", "a=1&" + ApiPlaceholder, "/x?a=&")]
    [InlineData("/x", "%50G_TEST_API_PLACEHOLDER_0001=1", "/x?[redacted]=")]
    [InlineData("/x", ApiReal + "=v", "/x?[redacted]=")]
    [InlineData("/x", "k=" + ApiReal + "&j=" + ApiPlaceholder, "/x?k=&j=")] // values are dropped
    [InlineData("/plain/path", "a=b&c", "/plain/path?a=&")] // a parameter without '=' is a value: never recorded
    [InlineData("/", "", "/")]
    public void Path_redacts_segments_and_query_names_and_drops_values(string rawPath, string rawQuery, string expected)
    {
        var recorded = Redactor.Path(rawPath, rawQuery, scanSegments: false);
        Assert.Equal(expected, recorded);
        Assert.DoesNotContain(ApiReal, recorded, StringComparison.Ordinal);
        Assert.DoesNotContain(ApiPlaceholder, recorded, StringComparison.Ordinal);
    }

    [Fact]
    public void Base64_of_the_real_value_in_a_segment_is_redacted() =>
        Assert.Equal("/x/[redacted]", Redactor.Path("/x/" + Convert.ToBase64String(Encoding.UTF8.GetBytes(ApiReal)), "", false));

    [Fact]
    public void Scanner_flagged_segments_are_redacted_only_when_asked()
    {
        Assert.Equal("/x/" + AcmeToken, Redactor.Path("/x/" + AcmeToken, "", scanSegments: false));
        Assert.Equal("/x/[redacted]", Redactor.Path("/x/" + AcmeToken, "", scanSegments: true));
        Assert.Equal("/x?[redacted]=", Redactor.Path("/x", AcmeToken + "=1", scanSegments: true));
    }

    [Fact]
    public void Control_characters_in_the_path_are_escaped()
    {
        var recorded = Redactor.Path("/a\u001b[2Jb/\u202e", "", false);
        Assert.DoesNotContain('\u001b', recorded);
        Assert.DoesNotContain('\u202e', recorded);
    }

    [Fact]
    public void Percent_encoded_real_value_in_a_segment_is_redacted()
    {
        // A server decodes %52 to 'R': the recorded segment would be the real value, one decode away.
        var recorded = Redactor.Path("/x/%52" + ApiReal[1..], "", false);
        Assert.Equal("/x/[redacted]", recorded);
    }

    [Fact]
    public void Real_value_containing_a_slash_is_not_recorded_across_segments()
    {
        // Cloud secret keys commonly contain '/': checked segment by segment, no single segment holds the value.
        const string slashy = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        var snapshot = Build(PolicyYaml().Replace("value: env:PG_TEST_BODY", "value: env:PG_TEST_SLASHY", StringComparison.Ordinal),
            ("PG_TEST_SLASHY", slashy));
        var recorded = new EventRedactor(snapshot).Path("/upload/" + slashy, "", false);
        Assert.DoesNotContain(slashy, recorded, StringComparison.Ordinal);
    }

    [Fact]
    public void Real_value_with_base64_padding_sent_as_a_query_is_not_recorded_as_a_name()
    {
        // A padded base64 token sent as the whole query: the name is the token minus its padding.
        const string padded = "c2VjcmV0LXRva2VuLXZhbHVlLTEyMzQ1Njc4OQ==";
        var snapshot = Build(PolicyYaml().Replace("value: env:PG_TEST_BODY", "value: env:PG_TEST_PADDED", StringComparison.Ordinal),
            ("PG_TEST_PADDED", padded));
        var recorded = new EventRedactor(snapshot).Path("/x", padded, false);
        Assert.DoesNotContain(padded.TrimEnd('='), recorded, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("GET", "GET")]
    [InlineData("GE\u001b[31mT", "GE\\x1b[31mT")]
    [InlineData("G\rE\nT", "G\\x0dE\\x0aT")]
    [InlineData("P\u202eOST", "P\\u202eOST")]
    public void Method_is_sanitised(string method, string expected) => Assert.Equal(expected, Redactor.Method(method, false));

    [Fact]
    public void Method_with_a_secret_too_long_or_flagged_is_redacted()
    {
        Assert.Equal("[redacted]", Redactor.Method(ApiPlaceholder, false));
        Assert.Equal("[redacted]", Redactor.Method(ApiReal, false));
        Assert.Equal("[redacted]", Redactor.Method(new string('A', 33), false));
        Assert.Equal("[redacted]", Redactor.Method("GET", true));
        Assert.Equal(new string('A', 32), Redactor.Method(new string('A', 32), false));
        Assert.Null(Redactor.Method(null, false));
    }

    [Theory]
    [InlineData("api.example.com", false, "api.example.com")]
    [InlineData("evil\u001b]0;x\u0007.example", false, "evil\\x1b]0;x\\x07.example")]
    [InlineData("acme-leak.x.evil.example.com", true, "[redacted].example.com")]
    [InlineData("evil.com", true, "[redacted]")]
    [InlineData("localhost", true, "[redacted]")]
    public void Host_is_sanitised_or_cut_to_its_last_two_labels(string host, bool carriesCredential, string expected) =>
        Assert.Equal(expected, Redactor.Host(host, carriesCredential));

    [Fact]
    public void Host_with_a_placeholder_label_is_cut() =>
        Assert.Equal("[redacted].example.com", Redactor.Host(ApiPlaceholder + ".example.com", false));

    [Fact]
    public void Host_credential_in_the_second_level_label_is_not_kept()
    {
        // "keep the last two labels" must not keep the label that carries the credential.
        var recorded = Redactor.Host("www." + AcmeToken + ".com", carriesCredential: true);
        Assert.DoesNotContain(AcmeToken, recorded, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_snapshot_nothing_is_a_secret_but_text_is_still_sanitised()
    {
        var redactor = new EventRedactor(null);
        Assert.False(redactor.CarriesSecret(ApiPlaceholder));
        Assert.Equal("a\\x1bb", redactor.Method("a\u001bb", false));
    }
}
