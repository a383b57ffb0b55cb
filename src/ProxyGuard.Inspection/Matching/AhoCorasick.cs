using System.Buffers;

namespace ProxyGuard.Inspection.Matching;

/// <summary>
/// Aho-Corasick automaton over bytes: one step per input byte (amortised O(1) through failure links),
/// so matching is linear in the input whatever the patterns share. Each state knows the longest
/// pattern that ends there (its own or through its dictionary suffix). Children are stored sorted in
/// flat arrays (memory linear in the total pattern length); the root has a dense table.
/// </summary>
internal sealed class AhoCorasick
{
    private readonly int[] _root = new int[256];
    private readonly int[] _childStart;
    private readonly int[] _childCount;
    private readonly byte[] _childKey;
    private readonly int[] _childNode;
    private readonly int[] _fail;
    private readonly int[] _outLength;
    private readonly int[] _outOwner;
    private readonly int[] _depth;

    public AhoCorasick(IReadOnlyList<(byte[] Pattern, int Owner)> patterns)
    {
        // Build a trie with dictionaries, then flatten.
        var children = new List<SortedDictionary<byte, int>> { new() };
        var terminalLength = new List<int> { 0 };
        var terminalOwner = new List<int> { -1 };
        var depth = new List<int> { 0 };
        var maxLength = 0;
        var firstBytes = new HashSet<byte>();
        foreach (var (pattern, owner) in patterns)
        {
            if (pattern.Length == 0)
            {
                continue;
            }

            firstBytes.Add(pattern[0]);
            maxLength = Math.Max(maxLength, pattern.Length);
            var node = 0;
            foreach (var b in pattern)
            {
                if (!children[node].TryGetValue(b, out var next))
                {
                    next = children.Count;
                    children.Add(new SortedDictionary<byte, int>());
                    terminalLength.Add(0);
                    terminalOwner.Add(-1);
                    depth.Add(depth[node] + 1);
                    children[node][b] = next;
                }

                node = next;
            }

            if (terminalLength[node] == 0)
            {
                terminalLength[node] = pattern.Length;
                terminalOwner[node] = owner;
            }
        }

        var count = children.Count;
        _childStart = new int[count];
        _childCount = new int[count];
        _childKey = new byte[count];
        _childNode = new int[count];
        _fail = new int[count];
        _outLength = new int[count];
        _outOwner = new int[count];
        _depth = [.. depth];
        var flat = 0;
        for (var n = 0; n < count; n++)
        {
            _childStart[n] = flat;
            _childCount[n] = children[n].Count;
            foreach (var (key, child) in children[n])
            {
                _childKey[flat] = key;
                _childNode[flat] = child;
                flat++;
            }
        }

        foreach (var (key, child) in children[0])
        {
            _root[key] = child;
        }

        // Breadth-first: failure links and longest output per state.
        var queue = new Queue<int>();
        foreach (var (_, child) in children[0])
        {
            _fail[child] = 0;
            _outLength[child] = terminalLength[child];
            _outOwner[child] = terminalOwner[child];
            queue.Enqueue(child);
        }

        while (queue.Count > 0)
        {
            var node = queue.Dequeue();
            foreach (var (key, child) in children[node])
            {
                _fail[child] = Step(_fail[node], key);
                if (terminalLength[child] > 0)
                {
                    _outLength[child] = terminalLength[child];
                    _outOwner[child] = terminalOwner[child];
                }
                else
                {
                    _outLength[child] = _outLength[_fail[child]];
                    _outOwner[child] = _outOwner[_fail[child]];
                }

                queue.Enqueue(child);
            }
        }

        MaxLength = maxLength;
        IsEmpty = maxLength == 0;
        FirstBytes = SearchValues.Create([.. firstBytes]);
    }

    public int MaxLength { get; }

    public bool IsEmpty { get; }

    /// <summary>Bytes that move the root to another state (every other byte leaves it at the root).</summary>
    public SearchValues<byte> FirstBytes { get; }

    /// <summary>The state after reading <paramref name="b"/> in <paramref name="state"/>.</summary>
    public int Step(int state, byte b)
    {
        while (state != 0)
        {
            var start = _childStart[state];
            var end = start + _childCount[state];
            for (var i = start; i < end; i++)
            {
                var key = _childKey[i];
                if (key == b)
                {
                    return _childNode[i];
                }

                if (key > b)
                {
                    break;
                }
            }

            state = _fail[state];
        }

        return _root[b];
    }

    /// <summary>Length of the longest pattern ending in this state (0: none).</summary>
    public int OutputLength(int state) => _outLength[state];

    /// <summary>How many of the last bytes read are a prefix of some pattern (0 at the root).</summary>
    public int Depth(int state) => _depth[state];

    /// <summary>Owner of the longest pattern ending in this state.</summary>
    public int OutputOwner(int state) => _outOwner[state];
}
