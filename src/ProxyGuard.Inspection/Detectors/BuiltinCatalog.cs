namespace ProxyGuard.Inspection.Detectors;

/// <summary>
/// The built-in detectors. Ids are stable (policies and exemptions refer to them). Each pattern follows the token
/// format's published shape: literal prefix, alphabet and length; context-dependent formats (a bare hex or base64
/// string) also need a keyword within a window.
/// </summary>
internal static class BuiltinCatalog
{
    private const string Tail = "(?![A-Za-z0-9])";
    private const string TailUrl = "(?![A-Za-z0-9_-])";

    public static readonly UrlPasswordDetector UrlPassword = new();

    public static IReadOnlyList<Detector> All { get; } = Build();

    public static IReadOnlyList<DetectorInfo> Infos { get; } = BuildInfos();

    private static IReadOnlyList<DetectorInfo> BuildInfos()
    {
        var infos = new List<DetectorInfo>(All.Count + 1);
        foreach (var detector in All)
        {
            infos.Add(new DetectorInfo(detector.Id, detector.Description));
        }

        infos.Add(new DetectorInfo(KnownSecretDetector.DetectorId, KnownSecretDetector.Summary));
        return infos;
    }

    private static Detector[] Build()
    {
        Detector[] list =
        [
            new RegexDetector(
                "aws-access-key-id",
                "AWS access key id: AKIA/ASIA/ABIA/ACCA (or A3T + one character) followed by 16 upper-case letters or digits.",
                @"\G(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}" + Tail,
                ["AKIA", "ASIA", "ABIA", "ACCA", "A3T"]),
            new RegexDetector(
                "aws-secret-access-key",
                "AWS secret access key: 40 base64 characters (mixed case and digits) within 256 characters of an AWS key id or an aws_secret_access_key-like name.",
                @"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
                ["AKIA", "ASIA"],
                ["aws_secret", "aws-secret", "awssecret", "aws secret", "secret_access_key", "secretaccesskey", "secret-access-key"],
                back: 256,
                forward: 256,
                validator: Validators.MixedCaseWithDigit,
                maxMatch: 40),
            new RegexDetector(
                "github-token",
                "GitHub classic token: ghp_/gho_/ghu_/ghs_/ghr_ followed by 36+ base62 characters (30 random + 6 checksum).",
                @"\Ggh[pousr]_[A-Za-z0-9]{36,251}" + Tail,
                ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
            new RegexDetector(
                "github-fine-grained-pat",
                "GitHub fine-grained personal access token: github_pat_ + 22 base62 + _ + 59 base62 characters.",
                @"\Ggithub_pat_[A-Za-z0-9]{22,40}_[A-Za-z0-9]{50,100}" + Tail,
                ["github_pat_"]),
            new RegexDetector(
                "gitlab-token",
                "GitLab tokens: glpat-/gldt-/glrt-/glptt-/glft-/glsoat-/glimt-/glagent-/glcbt-/glffct-/gloas-/glwt- + 20+ characters (routable .01. suffix too), and GR1348941 runner registration tokens.",
                @"\G(?:(?:glpat|gldt|glrt|glptt|glft|glsoat|glimt|glagent|glcbt|glffct|gloas|glwt)-[A-Za-z0-9_-]{20,300}(?:\.[0-9a-z]{2}\.[0-9a-z]{7,9})?|GR1348941[A-Za-z0-9_-]{20,})" + TailUrl,
                ["glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-", "glimt-", "glagent-", "glcbt-", "glffct-", "gloas-", "glwt-", "GR1348941"]),
            new RegexDetector(
                "slack-token",
                "Slack tokens: xoxb-/xoxp-/xoxa-/xoxo-/xoxs-/xoxr-/xoxe- + digits-alnum segments, xoxe.xoxp- refresh tokens, xapp- app tokens.",
                @"\G(?:(?:xoxe\.)?xox[abposre]-[0-9]{1,16}-[0-9A-Za-z-]{8,250}|xapp-[0-9]-[A-Z0-9]{6,}-[0-9]{6,}-[a-z0-9]{16,})",
                ["xoxb-", "xoxp-", "xoxa-", "xoxo-", "xoxs-", "xoxr-", "xoxe-", "xoxe.", "xapp-"]),
            new RegexDetector(
                "slack-webhook",
                "Slack incoming-webhook / workflow URL: hooks.slack.com/services|workflows|triggers/T…/…/secret.",
                @"\Ghooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]{6,}/[A-Z0-9]{6,}/[A-Za-z0-9/]{10,}",
                ["hooks.slack.com/"]),
            new RegexDetector(
                "stripe-key",
                "Stripe secret or restricted key: sk_live_/rk_live_/sk_test_/rk_test_ + 20-247 base62 characters.",
                @"\G[sr]k_(?:live|test)_[0-9A-Za-z]{20,247}" + Tail,
                ["sk_live_", "rk_live_", "sk_test_", "rk_test_"]),
            new RegexDetector(
                "google-api-key",
                "Google API key: AIza + 35 characters of [0-9A-Za-z_-].",
                @"\GAIza[0-9A-Za-z_-]{35}" + TailUrl,
                ["AIza"]),
            new ServiceAccountDetector(),
            new RegexDetector(
                "google-oauth-token",
                "Google OAuth access token (ya29. + 30+ chars) or refresh token (1//0 + 40+ chars).",
                @"\G(?:ya29\.[0-9A-Za-z_-]{30,}|(?<![0-9A-Za-z/])1//0[0-9A-Za-z_-]{40,})",
                ["ya29.", "1//0"]),
            new RegexDetector(
                "google-oauth-client-secret",
                "Google OAuth client secret: GOCSPX- + 28 characters.",
                @"\GGOCSPX-[A-Za-z0-9_-]{28}" + TailUrl,
                ["GOCSPX-"]),
            new RegexDetector(
                "azure-storage-key",
                "Azure storage account key in a connection string: AccountKey= + 86 base64 characters + ==.",
                @"\G(?i:AccountKey)=[A-Za-z0-9+/]{86}==",
                [],
                ["AccountKey="]),
            new RegexDetector(
                "azure-shared-access-key",
                "Azure Service Bus / Event Hubs / IoT shared access key in a connection string: SharedAccessKey= + 43-44 base64 characters.",
                @"\G(?i:SharedAccessKey)=[A-Za-z0-9+/]{42,43}=",
                [],
                ["SharedAccessKey="]),
            new RegexDetector(
                "openai-key",
                "OpenAI API key: sk-proj-/sk-svcacct-/sk-admin-/sk-None- + 40+ chars, legacy sk- + 20 + T3BlbkFJ + 20, or sk- + 48 base62.",
                @"(?<![A-Za-z0-9_-])sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{40,250}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{48})" + TailUrl,
                ["sk-", "T3BlbkFJ"],
                back: 32),
            new RegexDetector(
                "anthropic-key",
                "Anthropic API key: sk-ant-api03-/sk-ant-admin01-/sk-ant-oat01-/sk-ant-ort01- + 80+ characters.",
                @"\Gsk-ant-(?:api|admin|oat|ort)[0-9]{2}-[A-Za-z0-9_-]{80,200}",
                ["sk-ant-"]),
            new RegexDetector(
                "huggingface-token",
                "Hugging Face token: hf_ + 34-40 base62 characters (also api_org_ organisation tokens).",
                @"\G(?<![A-Za-z0-9_])(?:hf|api_org)_[A-Za-z0-9]{34,40}" + Tail,
                ["hf_", "api_org_"]),
            new RegexDetector(
                "npm-token",
                "npm access token: npm_ + 36 base62 characters.",
                @"\Gnpm_[A-Za-z0-9]{36}" + Tail,
                ["npm_"]),
            new RegexDetector(
                "pypi-token",
                "PyPI API token: pypi-AgEIcHlwaS5vcmc (macaroon for pypi.org; test.pypi.org too) + 50+ base64url characters.",
                @"\Gpypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,}",
                ["pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw"]),
            new RegexDetector(
                "rubygems-token",
                "RubyGems API key: rubygems_ + 48 hex characters.",
                @"\Grubygems_[a-f0-9]{48}" + Tail,
                ["rubygems_"]),
            new RegexDetector(
                "docker-hub-token",
                "Docker Hub personal / organisation access token: dckr_pat_ / dckr_oat_ + 27+ characters.",
                @"\Gdckr_(?:pat|oat)_[A-Za-z0-9_-]{27,}",
                ["dckr_pat_", "dckr_oat_"]),
            new RegexDetector(
                "digitalocean-token",
                "DigitalOcean token: dop_v1_/doo_v1_/dor_v1_ + 64 hex characters.",
                @"\Gdo[por]_v1_[a-f0-9]{64}" + Tail,
                ["dop_v1_", "doo_v1_", "dor_v1_"]),
            new RegexDetector(
                "twilio",
                "Twilio account SID / API key SID (AC or SK + 32 hex) within 256 characters of the word twilio.",
                @"(?<![A-Za-z0-9])(?:AC|SK)[0-9a-f]{32}" + Tail,
                [],
                ["twilio"],
                back: 256,
                forward: 256),
            new RegexDetector(
                "sendgrid",
                "SendGrid API key: SG. + 22 characters + . + 43 characters.",
                @"\G(?<![A-Za-z0-9])SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}" + TailUrl,
                ["SG."]),
            new RegexDetector(
                "mailgun",
                "Mailgun API key (key- + 32 chars, or 32hex-8hex-8hex) within 256 characters of the word mailgun.",
                @"(?<![A-Za-z0-9])(?:key-[0-9a-z]{32}|[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8})" + Tail,
                [],
                ["mailgun"],
                back: 256,
                forward: 256),
            new RegexDetector(
                "shopify",
                "Shopify access token / shared secret / custom app / private app password: shpat_/shpss_/shpca_/shppa_ + 32 hex.",
                @"\Gshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}" + Tail,
                ["shpat_", "shpss_", "shpca_", "shppa_"]),
            new RegexDetector(
                "vault-token",
                "HashiCorp Vault token: hvs./hvb./hvr. + 24+ characters; legacy s. + 24 base62 characters (with a digit) within 128 characters of the word vault.",
                @"(?<![A-Za-z0-9_.-])(?:hv[sbr]\.[A-Za-z0-9_-]{24,400}|s\.[A-Za-z0-9]{24})" + TailUrl,
                ["hvs.", "hvb.", "hvr."],
                ["vault"],
                back: 128,
                forward: 128,
                validator: Validators.VaultToken),
            new RegexDetector(
                "age-secret-key",
                "age (file encryption) secret key: AGE-SECRET-KEY-1 + 58 bech32 characters.",
                @"\GAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
                ["AGE-SECRET-KEY-1"]),
            new RegexDetector(
                "private-key-pem",
                "PEM private key header, every form: -----BEGIN [RSA |EC |DSA |OPENSSH |ENCRYPTED |SSH2 ENCRYPTED |…]PRIVATE KEY----- and -----BEGIN PGP PRIVATE KEY BLOCK-----.",
                @"\G-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----",
                ["-----BEGIN "]),
            new RegexDetector(
                "putty-private-key",
                "PuTTY private key file: PuTTY-User-Key-File-<n>: header.",
                @"\GPuTTY-User-Key-File-[0-9]: ?[a-z0-9-]+",
                ["PuTTY-User-Key-File-"]),
            new JwtDetector(),
            UrlPassword,
            new RegexDetector(
                "atlassian-api-token",
                "Atlassian (Jira/Confluence) API token: ATATT3 + 100+ characters.",
                @"\GATATT3[A-Za-z0-9_=-]{100,400}",
                ["ATATT3"],
                forward: 420),
            new RegexDetector(
                "linear-api-key",
                "Linear API key: lin_api_ + 40 base62 characters (lin_oauth_ + 64 hex).",
                @"\Glin_(?:api_[A-Za-z0-9]{40}|oauth_[a-f0-9]{64})" + Tail,
                ["lin_api_", "lin_oauth_"]),
            new RegexDetector(
                "sentry-auth-token",
                "Sentry auth tokens: organisation sntrys_eyJ… and user sntryu_ + 64 hex.",
                @"\G(?:sntrys_eyJ[A-Za-z0-9+/=_-]{40,}|sntryu_[a-f0-9]{64}" + Tail + ")",
                ["sntrys_", "sntryu_"],
                forward: 1024),
            new RegexDetector(
                "databricks-token",
                "Databricks personal access token: dapi + 32 hex (optional -N suffix).",
                @"\G(?<![A-Za-z0-9])dapi[a-f0-9]{32}(?:-[0-9])?" + Tail,
                ["dapi"]),
            new RegexDetector(
                "heroku-api-key",
                "Heroku API key: HRKU- tokens, or a UUID right after a heroku_api_key/heroku_token-like name.",
                @"(?:\GHRKU-[A-Za-z0-9_-]{20,}|(?<![A-Za-z0-9-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![A-Za-z0-9-]))",
                ["HRKU-"],
                ["heroku_api_key", "heroku-api-key", "heroku_api_token", "heroku_token", "herokuapikey", "heroku_oauth_token"],
                back: 0,
                forward: 96),
            new RegexDetector(
                "newrelic-key",
                "New Relic keys: NRAK- user API key (27 chars), NRJS- browser key, NRII- insights insert key.",
                @"\G(?:NRAK-[A-Z0-9]{27}|NRJS-[a-f0-9]{19}|NRII-[A-Za-z0-9_-]{32})" + Tail,
                ["NRAK-", "NRJS-", "NRII-"]),
            new RegexDetector(
                "pulumi-token",
                "Pulumi access token: pul- + 40 hex characters.",
                @"\G(?<![A-Za-z0-9])pul-[a-f0-9]{40}" + Tail,
                ["pul-"]),
            new RegexDetector(
                "terraform-cloud-token",
                "Terraform Cloud / Enterprise API token: 14 base62 characters + .atlasv1. + 60-70 characters.",
                @"(?<![A-Za-z0-9])[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}(?![A-Za-z0-9_=-])",
                [".atlasv1."],
                back: 16,
                forward: 80),
            new RegexDetector(
                "grafana-token",
                "Grafana service-account token glsa_ + 32 + _ + 8 hex; Grafana Cloud token glc_ + 32+ base64.",
                @"\G(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2})" + Tail,
                ["glsa_", "glc_"],
                forward: 420),
            new RegexDetector(
                "doppler-token",
                "Doppler token: dp.pt./dp.st./dp.sa./dp.ct./dp.scim./dp.audit. (+ optional environment slug) + 40-44 base62.",
                @"\Gdp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_-]{1,40}\.)?[A-Za-z0-9]{40,44}" + Tail,
                ["dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."]),
            new RegexDetector(
                "planetscale-token",
                "PlanetScale token / password: pscale_tkn_ / pscale_pw_ / pscale_oauth_ + 32-64 characters.",
                @"\Gpscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32,64}",
                ["pscale_tkn_", "pscale_pw_", "pscale_oauth_"]),
            new RegexDetector(
                "postman-api-key",
                "Postman API key: PMAK- + 24 hex + - + 34 hex.",
                @"\GPMAK-[a-f0-9]{24}-[a-f0-9]{34}" + Tail,
                ["PMAK-"]),
            new RegexDetector(
                "square-token",
                "Square access token / OAuth secret: sq0atp- / sq0csp- + 22-43 characters.",
                @"\Gsq0(?:atp|csp)-[0-9A-Za-z_-]{22,43}" + TailUrl,
                ["sq0atp-", "sq0csp-"]),
            new RegexDetector(
                "discord-webhook",
                "Discord webhook URL: discord(app).com/api/webhooks/<id>/<60-80 char token>.",
                @"\Gdiscord(?:app)?\.com/api/webhooks/[0-9]{5,30}/[A-Za-z0-9_-]{60,80}",
                ["discord.com/api/webhooks/", "discordapp.com/api/webhooks/"]),
            new RegexDetector(
                "supabase-token",
                "Supabase personal access token: sbp_ + 40 hex characters.",
                @"\G(?<![A-Za-z0-9])sbp_[a-f0-9]{40}" + Tail,
                ["sbp_"]),
        ];

        for (var i = 0; i < list.Length; i++)
        {
            list[i].Index = i;
        }

        return list;
    }
}
