using Swarm.Core.Sources;

namespace Swarm.Tests.Core.Sources;

/// <summary>
/// What a task's source, headers and errors look like once secrets are taken out (<see cref="TaskKey.Redact(string, IReadOnlyCollection{string})"/>,
/// <see cref="SecretRedactor"/>): exact outputs, so a change that leaks a secret or mangles the rest of a URL fails.
/// </summary>
public sealed class RedactionTests
{
    private static readonly string[] Sig = ["sig"];

    [Theory]
    [InlineData("https://example.com/a/b?x=1&sig=abc&y=2", "https://example.com/a/b?x=1&sig=REDACTED&y=2")]
    [InlineData("https://example.com/f?sig=abc", "https://example.com/f?sig=REDACTED")]
    [InlineData("https://example.com/f?z=9&y=8&x=7", "https://example.com/f?z=9&y=8&x=7")]
    [InlineData("http://127.0.0.1:8080/f?Sig=keep&sig=drop", "http://127.0.0.1:8080/f?Sig=keep&sig=REDACTED")]
    [InlineData("https://example.com/f?sig=a&sig=b&n=1", "https://example.com/f?sig=REDACTED&sig=REDACTED&n=1")]
    [InlineData("https://example.com/f?a=%2F%3D&sig=x%26y", "https://example.com/f?a=%2F%3D&sig=REDACTED")]
    public void Filtered_query_values_are_replaced_and_the_other_parameters_keep_their_order_and_value(string url, string shown) =>
        Assert.Equal(shown, TaskKey.Redact(url, Sig));

    [Fact]
    public void Several_filters_each_redact_their_own_parameter()
    {
        string url = "https://bucket.example.com/obj?X-Amz-Date=20240101&X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA%2F1&part=3";
        Assert.Equal("https://bucket.example.com/obj?X-Amz-Date=20240101&X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&part=3",
            TaskKey.Redact(url, ["X-Amz-Signature", "X-Amz-Credential"]));
    }

    [Theory]
    [InlineData("https://user:secret@example.com/f", "https://REDACTED@example.com/f")]
    [InlineData("http://token@127.0.0.1:9000/f?sig=1&a=2", "http://REDACTED@127.0.0.1:9000/f?sig=REDACTED&a=2")]
    [InlineData("https://example.com/f", "https://example.com/f")]
    public void User_information_in_a_url_is_redacted(string url, string shown) => Assert.Equal(shown, TaskKey.Redact(url, Sig));

    [Fact]
    public void A_percent_encoded_parameter_name_matches_its_decoded_filter_and_keeps_its_encoding()
    {
        Assert.Equal("https://example.com/f?a=1&my%20sig=REDACTED&b=2", TaskKey.Redact("https://example.com/f?a=1&my%20sig=v&b=2", ["my sig"]));
        // System.Uri decodes an escaped unreserved character ("_") when it parses: the name is shown decoded, still redacted.
        Assert.Equal("https://example.com/f?x_sig=REDACTED&x%26sig=REDACTED", TaskKey.Redact("https://example.com/f?x%5Fsig=v&x%26sig=w", ["x_sig", "x&sig"]));
    }

    [Theory]
    [InlineData("https://example.com/f?", "https://example.com/f")]
    [InlineData("https://example.com/f?&&", "https://example.com/f?&&")]
    [InlineData("https://example.com/f?flag&a=1", "https://example.com/f?flag&a=1")]
    [InlineData("https://example.com/f?sig", "https://example.com/f?sig=REDACTED")]
    [InlineData("https://example.com/f?=v&sig=", "https://example.com/f?=v&sig=REDACTED")]
    // A stray "%" is escaped by System.Uri when it parses (shown as %25); the bad escape in the secret is redacted whole.
    [InlineData("https://example.com/f?sig=%zz&a=%", "https://example.com/f?sig=REDACTED&a=%25")]
    public void Odd_queries_do_not_crash_and_keep_what_is_not_secret(string url, string shown) => Assert.Equal(shown, TaskKey.Redact(url, Sig));

    [Theory]
    [InlineData("/data/file?sig=abc")]
    [InlineData("file:///data/file?sig=abc")]
    [InlineData("swarm://0123")]
    [InlineData("")]
    public void A_source_that_is_not_an_http_url_is_shown_as_given(string source) => Assert.Equal(source, TaskKey.Redact(source, Sig));

    [Theory]
    [InlineData("Authorization: Bearer abc.def", "Authorization: REDACTED")]
    [InlineData("X-Api-Key:k1", "X-Api-Key: REDACTED")]
    [InlineData("  Cookie : a=b; c=d", "Cookie: REDACTED")]
    [InlineData("Empty:", "Empty: REDACTED")]
    [InlineData("no colon at all", "REDACTED")]
    [InlineData(":value-without-name", "REDACTED")]
    [InlineData("", "REDACTED")]
    public void Headers_are_shown_as_their_name_and_REDACTED(string header, string shown) => Assert.Equal(shown, SecretRedactor.RedactHeader(header));

    [Fact]
    public void The_redactor_shows_the_source_and_headers_redacted()
    {
        var r = new SecretRedactor("https://bob:hunter2@example.com/f?sig=s3cr3t&a=1", Sig, ["Authorization: Bearer tok-123", "X-Key: k-456"]);
        Assert.Equal("https://REDACTED@example.com/f?sig=REDACTED&a=1", r.Source);
        Assert.Equal(["Authorization: REDACTED", "X-Key: REDACTED"], r.Headers);
    }

    [Fact]
    public void A_secret_inside_an_exception_message_is_masked_in_every_form_it_is_printed()
    {
        string source = "https://bob:hunter2@example.com/f?sig=ab%2Bcd%2F&a=1";
        var r = new SecretRedactor(source, Sig, ["Authorization: Bearer tok-123"]);
        var error = new HttpRequestException($"GET {source} failed");
        Assert.Equal("GET https://REDACTED@example.com/f?sig=REDACTED&a=1 failed", r.Scrub(error.Message));
        // Deep down, the URL as Uri.ToString() prints it (unescaped), and the credential alone or with its scheme.
        Assert.Equal("sig REDACTED rejected; header REDACTED, token REDACTED; user REDACTED",
            r.Scrub("sig ab+cd/ rejected; header Bearer tok-123, token tok-123; user bob:hunter2"));
        Assert.Equal("escaped REDACTED", r.Scrub("escaped ab%2Bcd%2F"));
        Assert.Equal("nothing secret here: a=1", r.Scrub("nothing secret here: a=1"));
    }

    [Fact]
    public void A_longer_secret_that_contains_a_shorter_one_is_replaced_whole()
    {
        var r = new SecretRedactor("https://example.com/f?sig=abc", Sig, ["X-Key: abcdef"]);
        Assert.Equal("REDACTED and REDACTED", r.Scrub("abcdef and abc"));
    }

    [Fact]
    public void A_redactor_with_nothing_secret_changes_nothing_but_user_information()
    {
        var plain = SecretRedactor.For("https://example.com/f?sig=abc&a=1");
        Assert.Equal("https://example.com/f?sig=abc&a=1", plain.Source);
        Assert.Empty(plain.Headers);
        Assert.Equal("failed: https://example.com/f?sig=abc&a=1", plain.Scrub("failed: https://example.com/f?sig=abc&a=1"));
        var withUser = SecretRedactor.For("https://u:p@example.com/f");
        Assert.Equal("https://REDACTED@example.com/f", withUser.Source);
        Assert.Equal("at https://REDACTED@example.com/f as REDACTED", withUser.Scrub("at https://u:p@example.com/f as u:p"));
    }

    [Theory]
    [InlineData("https://example.com/f?&&")]
    [InlineData("https://example.com/f?sig")]
    [InlineData("https://example.com/f?")]
    [InlineData("https://example.com/f?sig=")]
    [InlineData("not a url")]
    [InlineData("")]
    public void Odd_sources_make_a_redactor_that_scrubs_without_crashing(string source)
    {
        var r = new SecretRedactor(source, Sig, ["", ":", "NoColon"]);
        Assert.Equal(TaskKey.Redact(source, Sig), r.Source);
        Assert.Equal(["REDACTED", "REDACTED", "REDACTED"], r.Headers);
        Assert.Equal("", r.Scrub(null));
        Assert.Equal("", r.Scrub(""));
        Assert.Equal("a log line", r.Scrub("a log line"));
    }
}
