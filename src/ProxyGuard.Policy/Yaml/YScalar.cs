using YamlDotNet.Core;

namespace ProxyGuard.Policy.Yaml;

internal sealed class YScalar : YNode
{
    public YScalar(string value, ScalarStyle style, int line, int column)
        : base(line, column)
    {
        Value = value;
        Style = style;
    }

    public string Value { get; }

    public ScalarStyle Style { get; }

    public bool IsPlain => Style is ScalarStyle.Plain or ScalarStyle.Any;

    /// <summary>A plain empty, <c>~</c> or <c>null</c> scalar (YAML 1.2 core schema null).</summary>
    public bool IsNull => IsPlain && Value is "" or "~" or "null" or "Null" or "NULL";

    public override string KindName => IsNull ? "null" : "scalar";
}
