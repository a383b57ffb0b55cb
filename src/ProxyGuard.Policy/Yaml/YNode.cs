namespace ProxyGuard.Policy.Yaml;

/// <summary>A node of the parsed YAML document, with its 1-based source position.</summary>
internal abstract class YNode
{
    protected YNode(int line, int column)
    {
        Line = line;
        Column = column;
    }

    public int Line { get; }

    public int Column { get; }

    public abstract string KindName { get; }
}
