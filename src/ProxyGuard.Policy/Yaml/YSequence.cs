namespace ProxyGuard.Policy.Yaml;

internal sealed class YSequence : YNode
{
    public YSequence(IReadOnlyList<YNode> items, int line, int column)
        : base(line, column)
    {
        Items = items;
    }

    public IReadOnlyList<YNode> Items { get; }

    public override string KindName => "list";
}
