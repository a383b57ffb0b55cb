namespace ProxyGuard.Secrets.Tests.Support;

internal static class TestSecrets
{
    public const string GitHubValue = "ghp_synthetic0123456789ABCDEFabcdef";
    public const string GitHubPlaceholder = "PG_GITHUB_AAAABBBBCCCCDDDD";
    public const string AiValue = "sk-synthetic+value/with=chars 42";
    public const string AiPlaceholder = "PG_AI_EEEEFFFFGGGGHHHH";
    public const string QueryValue = "synthetic q+v/a=l&ue 9";
    public const string QueryPlaceholder = "PG_SEARCH_IIIIJJJJKKKKLLLL";
    public const string BodyValue = "synthetic\"body\\value+1";
    public const string BodyPlaceholder = "PG_UPLOAD_MMMMNNNNOOOOPPPP";

    public static Substitutor Create() => new(
    [
        new SecretBinding("github", GitHubPlaceholder, new SecretValue(GitHubValue),
            h => h is "api.github.com" or "github.com", InHeaders: true, InQuery: true, InBody: false),
        new SecretBinding("ai", AiPlaceholder, new SecretValue(AiValue),
            h => h == "api.ai.test", InHeaders: true, InQuery: false, InBody: false),
        new SecretBinding("search", QueryPlaceholder, new SecretValue(QueryValue),
            h => h == "api.search.test", InHeaders: false, InQuery: true, InBody: false),
        new SecretBinding("upload", BodyPlaceholder, new SecretValue(BodyValue),
            h => h == "upload.test", InHeaders: false, InQuery: false, InBody: true),
    ]);

    public static IEnumerable<string> AllValues => [GitHubValue, AiValue, QueryValue, BodyValue];
}
