using System.Text;
using ProxyGuard.Secrets.Tests.Support;
using static ProxyGuard.Secrets.Tests.Support.TestSecrets;

namespace ProxyGuard.Secrets.Tests;

public sealed class ScrubbingTests
{
    private readonly Substitutor _substitutor = Create();

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static string B64Url(string text) => B64(text).Replace('+', '-').Replace('/', '_').TrimEnd('=');

    public static TheoryData<string> Values => new(AllValues);

    [Theory]
    [MemberData(nameof(Values))]
    public void FindsRawAndEncodedForms(string value)
    {
        var name = _substitutor.FindRealValue(value);
        Assert.NotNull(name);
        Assert.Equal(name, _substitutor.FindRealValue("prefix " + value + " suffix"));
        Assert.Equal(name, _substitutor.FindRealValue("x=" + B64(value)));
        Assert.Equal(name, _substitutor.FindRealValue("x=" + B64(value).TrimEnd('=')));
        Assert.Equal(name, _substitutor.FindRealValue("x=" + B64Url(value) + "&y"));
        Assert.Equal(name, _substitutor.FindRealValue(Encoding.UTF8.GetBytes("k=" + Uri.EscapeDataString(value))));
    }

    [Theory]
    [MemberData(nameof(Values))]
    public void FindsValueInsideLargerBase64AtEveryAlignment(string value)
    {
        // user:VALUE in Basic credentials, and arbitrary prefixes/suffixes: covers all 3 alignments.
        for (var prefix = 0; prefix < 6; prefix++)
        {
            for (var suffix = 0; suffix < 3; suffix++)
            {
                var text = new string('u', prefix) + ":" + value + new string('s', suffix);
                Assert.NotNull(_substitutor.FindRealValue("Basic " + B64(text)));
                Assert.NotNull(_substitutor.FindRealValue("t=" + B64Url(text)));
            }
        }
    }

    [Fact]
    public void FindsPercentEncodedVariants()
    {
        var upper = Uri.EscapeDataString(AiValue);
        Assert.Equal("ai", _substitutor.FindRealValue(upper));
        Assert.Equal("ai", _substitutor.FindRealValue(upper.Replace("%2B", "%2b", StringComparison.Ordinal).Replace("%2F", "%2f", StringComparison.Ordinal).Replace("%3D", "%3d", StringComparison.Ordinal)));
        Assert.Equal("ai", _substitutor.FindRealValue(upper.Replace("%20", "+", StringComparison.Ordinal)));
    }

    [Fact]
    public void DoesNotFlagUnrelatedTextOrPlaceholders()
    {
        Assert.Null(_substitutor.FindRealValue("hello world " + GitHubPlaceholder));
        Assert.Null(_substitutor.FindRealValue(B64("some other credentials:hunter2-synthetic")));
        Assert.Null(_substitutor.FindRealValue(ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void ScrubTextReplacesEveryForm()
    {
        var text = $"a={GitHubValue} b={B64(GitHubValue)} c={Uri.EscapeDataString(AiValue)} d={AiValue}";
        var scrubbed = _substitutor.ScrubText(text);
        Assert.Equal($"a={GitHubPlaceholder} b={GitHubPlaceholder} c={AiPlaceholder} d={AiPlaceholder}", scrubbed);
        Assert.Null(_substitutor.FindRealValue(scrubbed));
        const string clean = "nothing to see";
        Assert.Same(clean, _substitutor.ScrubText(clean));
    }

    [Fact]
    public void ScrubTextRemovesBase64InsideBasicEcho()
    {
        var echoed = "Basic " + B64("x-access-token:" + GitHubValue);
        var scrubbed = _substitutor.ScrubText(echoed);
        Assert.Contains(GitHubPlaceholder, scrubbed, StringComparison.Ordinal);
        Assert.Null(_substitutor.FindRealValue(scrubbed));
    }

    [Fact]
    public void ScrubBody()
    {
        var body = Encoding.UTF8.GetBytes("{\"echo\":\"Bearer " + GitHubValue + "\"}");
        var scrubbed = _substitutor.ScrubBody(body);
        Assert.Equal("{\"echo\":\"Bearer " + GitHubPlaceholder + "\"}", Encoding.UTF8.GetString(scrubbed!));
        Assert.Null(_substitutor.ScrubBody("{\"echo\":\"nothing\"}"u8));
    }

    private static string StreamContent() =>
        "head " + GitHubValue + " mid " + B64("user:" + AiValue) + " x " + Uri.EscapeDataString(QueryValue)
        + " y " + B64Url(BodyValue) + " " + GitHubValue + GitHubValue + " tail " + AiValue;

    [Fact]
    public void StreamingOneByteReadsMatchesWholeBufferScrub()
    {
        var content = Encoding.UTF8.GetBytes(StreamContent());
        var expected = _substitutor.ScrubBody(content)!;
        using var stream = _substitutor.CreateScrubbingStream(new ChunkedReadStream(content, [1]));
        var output = new MemoryStream();
        var one = new byte[1];
        while (stream.Read(one, 0, 1) == 1)
        {
            output.WriteByte(one[0]);
        }

        Assert.Equal(Encoding.UTF8.GetString(expected), Encoding.UTF8.GetString(output.ToArray()));
        Assert.Null(_substitutor.FindRealValue(output.ToArray()));
    }

    [Fact]
    public void StreamingCatchesValuesSplitAtEveryBoundary()
    {
        var content = Encoding.UTF8.GetBytes(StreamContent());
        var expected = Encoding.UTF8.GetString(_substitutor.ScrubBody(content)!);
        for (var split = 1; split < content.Length; split++)
        {
            using var stream = _substitutor.CreateScrubbingStream(new ChunkedReadStream(content, [split, content.Length]));
            using var reader = new StreamReader(stream);
            Assert.Equal(expected, reader.ReadToEnd());
        }
    }

    [Fact]
    public async Task StreamingAsyncReadsWithVariedChunks()
    {
        var content = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(StreamContent() + "\n", 200)));
        var expected = _substitutor.ScrubBody(content)!;
        foreach (var chunk in new[] { 1, 2, 3, 7, 13, 64, 4096 })
        {
            await using var stream = _substitutor.CreateScrubbingStream(new ChunkedReadStream(content, [chunk]));
            var output = new MemoryStream();
            await stream.CopyToAsync(output, 5);
            Assert.Equal(expected, output.ToArray());
        }
    }

    [Fact]
    public void StreamingWriteModeOneByteWrites()
    {
        var content = Encoding.UTF8.GetBytes(StreamContent());
        var expected = _substitutor.ScrubBody(content)!;
        var sink = new WriteOnlySink();
        using (var stream = _substitutor.CreateScrubbingStream(sink, leaveOpen: true))
        {
            foreach (var b in content)
            {
                stream.WriteByte(b);
            }
        }

        Assert.Equal(expected, sink.Data.ToArray());
    }

    [Fact]
    public void StreamingWithoutSecretsPassesThrough()
    {
        var content = "no secrets here"u8.ToArray();
        using var stream = Substitutor.Empty.CreateScrubbingStream(new MemoryStream(content));
        using var reader = new StreamReader(stream);
        Assert.Equal("no secrets here", reader.ReadToEnd());
    }

    [Fact]
    public void WindowCoversLongestEncodedValue() =>
        Assert.True(_substitutor.LongestEncodedValue >= Uri.EscapeDataString(QueryValue).Length);

    /// <summary>Returns at most the next chunk size per read (sizes cycle; last one repeats).</summary>
    private sealed class ChunkedReadStream(byte[] data, int[] chunks) : Stream
    {
        private int _index;
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => data.Length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var count = Math.Min(Math.Min(buffer.Length, NextChunk()), data.Length - _position);
            data.AsSpan(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int NextChunk() => chunks[Math.Min(_index++, chunks.Length - 1)];
    }
}
