namespace ProxyGuard.Policy.Yaml;

/// <summary>Stands in for a node that already produced a diagnostic (e.g. an unknown alias), so no second error is reported for it.</summary>
internal sealed class YInvalid : YNode
{
    public YInvalid(int line, int column)
        : base(line, column)
    {
    }

    public override string KindName => "invalid";
}
