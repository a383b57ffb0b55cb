using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Content;

/// <summary>
/// The origin fixture with content scanning on: all built-in detectors, a 1 MiB body limit, a redact and a log
/// rule, and github-token exempt toward origin.test only (localhost and 127.0.0.1 reach the same origin).
/// </summary>
public sealed class ContentFixture : OriginFixture
{
    public const long MaxBody = 1024 * 1024;

    protected override string Content => """
        content:
          builtin: all
          scan: [headers, query, body]
          max_body: 1MiB
          over_limit: deny
          rules:
            - name: acme-redact
              pattern: 'acme_[a-z0-9]{32}'
              action: redact
            - name: acme-log
              pattern: 'acmelog_[a-z0-9]{24}'
              action: log
          exempt:
            - { detectors: [github-token], hosts: [origin.test] }

        """;
}
