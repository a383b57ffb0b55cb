using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ProxyGuard.Inspection.Decoding;

namespace ProxyGuard.Inspection.Scanning;

/// <summary>
/// Finds runs of at least <see cref="MinRun"/> base64/base64url characters. Classifies 64 characters at a time into
/// a bit mask with SIMD and detects long runs with shift-and (x &amp; x&gt;&gt;1, …), so ordinary text costs well
/// under a nanosecond per character.
/// </summary>
internal static class Base64RunFinder
{
    public const int MinRun = 20;

    private static readonly SearchValues<char> _runChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_");

    private static readonly SearchValues<byte> _runBytes =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"u8);

    /// <summary>
    /// Finds the next run starting at or after <paramref name="from"/>; returns false when none. One implementation
    /// for text as <c>char</c> and as bytes (Latin-1: byte i is char i); only the 64-character classification differs.
    /// </summary>
    public static bool FindNext<T>(ReadOnlySpan<T> text, int from, out int runStart, out int runEnd)
        where T : unmanaged, IBinaryInteger<T>
    {
        var length = text.Length;
        var i = from;
        var carry = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            while (i + 64 <= length)
            {
                var mask = Mask64(text, i);
                if (mask == ulong.MaxValue)
                {
                    carry += 64;
                    i += 64;
                    continue;
                }

                var lead = BitOperations.TrailingZeroCount(~mask);
                if (carry + lead >= MinRun)
                {
                    return Finish(text, i - carry, out runStart, out runEnd);
                }

                var inner = mask & ~((1UL << lead) - 1);
                var x2 = inner & (inner >> 1);
                var x4 = x2 & (x2 >> 2);
                var x8 = x4 & (x4 >> 4);
                var x16 = x8 & (x8 >> 8);
                var x20 = x16 & (x4 >> 16);
                if (x20 != 0)
                {
                    return Finish(text, i + BitOperations.TrailingZeroCount(x20), out runStart, out runEnd);
                }

                carry = BitOperations.LeadingZeroCount(~mask);
                i += 64;
            }
        }

        for (; i < length; i++)
        {
            if (IsRunChar(text[i]))
            {
                carry++;
                continue;
            }

            if (carry >= MinRun)
            {
                return Finish(text, i - carry, out runStart, out runEnd);
            }

            carry = 0;
        }

        if (carry >= MinRun)
        {
            return Finish(text, length - carry, out runStart, out runEnd);
        }

        runStart = runEnd = length;
        return false;
    }

    private static bool Finish<T>(ReadOnlySpan<T> text, int start, out int runStart, out int runEnd)
        where T : unmanaged, IBinaryInteger<T>
    {
        runStart = start;
        var lineStart = start;
        var end = start;
        while (true)
        {
            end = RunEnd(text, end);

            // Join MIME/PEM-style wrapped lines: a full line (multiple of 4, at least 40) followed by a line break
            // and more base64. Shorter lines are joined by WrappedBase64.
            var lineLength = end - lineStart;
            if (lineLength >= 40 && lineLength % 4 == 0 && end < text.Length)
            {
                var next = end;
                if (int.CreateTruncating(text[next]) == '\r')
                {
                    next++;
                }

                if (next < text.Length && int.CreateTruncating(text[next]) == '\n' && next + 1 < text.Length && IsRunChar(text[next + 1]))
                {
                    end = next + 1;
                    lineStart = end;
                    continue;
                }
            }

            break;
        }

        for (var pad = 0; pad < 2 && end < text.Length && int.CreateTruncating(text[end]) == '='; pad++)
        {
            end++;
        }

        runEnd = end;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsRunChar<T>(T c)
        where T : unmanaged, IBinaryInteger<T> => Base64.IsRunChar((char)ushort.CreateTruncating(c));

    /// <summary>The end of the alphabet characters starting at <paramref name="start"/> (the first other one, or the length).</summary>
    private static int RunEnd<T>(ReadOnlySpan<T> text, int start)
        where T : unmanaged, IBinaryInteger<T>
    {
        if (typeof(T) == typeof(byte))
        {
            return RunEnd(MemoryMarshal.Cast<T, byte>(text), start);
        }

        var rest = MemoryMarshal.Cast<T, char>(text)[start..].IndexOfAnyExcept(_runChars);
        return rest < 0 ? text.Length : start + rest;
    }

    /// <summary>The alphabet mask of the 64 characters at <paramref name="index"/> (bit k: character index + k).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mask64<T>(ReadOnlySpan<T> text, int index)
        where T : unmanaged, IBinaryInteger<T>
    {
        if (typeof(T) == typeof(byte))
        {
            ref var origin = ref Unsafe.As<T, byte>(ref MemoryMarshal.GetReference(text));
            return Mask32(Vector256.LoadUnsafe(ref origin, (nuint)index))
                | ((ulong)Mask32(Vector256.LoadUnsafe(ref origin, (nuint)(index + 32))) << 32);
        }

        return Mask64(ref Unsafe.As<T, ushort>(ref MemoryMarshal.GetReference(text)), index);
    }

    // Nibble classification (as in IndexOfAnyAsciiSearcher): for each low nibble, the set of high nibbles 0..7 that make
    // an alphabet byte with it; for each high nibble, its bit (none from 8 up, so bytes >= 0x80 never match).
    private static readonly Vector256<byte> _lowNibbleSets = BuildLowNibbleSets();
    private static readonly Vector256<byte> _highNibbleBits = Vector256.Create(
        Vector128.Create((byte)1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 0, 0, 0, 0, 0),
        Vector128.Create((byte)1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 0, 0, 0, 0, 0));

    private static Vector256<byte> BuildLowNibbleSets()
    {
        Span<byte> sets = stackalloc byte[16];
        for (var b = 0; b < 128; b++)
        {
            if (Base64.IsRunChar((char)b))
            {
                sets[b & 15] |= (byte)(1 << (b >> 4));
            }
        }

        var half = Vector128.Create((ReadOnlySpan<byte>)sets);
        return Vector256.Create(half, half);
    }

    /// <summary>The end of the alphabet characters starting at <paramref name="start"/> (the first other byte, or the length).</summary>
    private static int RunEnd(ReadOnlySpan<byte> text, int start)
    {
        var p = start;
        if (Vector256.IsHardwareAccelerated)
        {
            ref var origin = ref MemoryMarshal.GetReference(text);
            while (p + 32 <= text.Length)
            {
                var mask = Mask32(Vector256.LoadUnsafe(ref origin, (nuint)p));
                if (mask != uint.MaxValue)
                {
                    return p + BitOperations.TrailingZeroCount(~mask);
                }

                p += 32;
            }
        }

        var rest = text[p..].IndexOfAnyExcept(_runBytes);
        return rest < 0 ? text.Length : p + rest;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Mask32(Vector256<byte> v)
    {
        if (Avx2.IsSupported)
        {
            var nibble = Vector256.Create((byte)0x0F);
            var high = Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & nibble;
            var hit = Avx2.Shuffle(_lowNibbleSets, v & nibble) & Avx2.Shuffle(_highNibbleBits, high);
            return ~Vector256.Equals(hit, Vector256<byte>.Zero).ExtractMostSignificantBits();
        }

        var folded = v | Vector256.Create((byte)0x20);
        var letter = Vector256.LessThanOrEqual(folded - Vector256.Create((byte)'a'), Vector256.Create((byte)25));
        var digit = Vector256.LessThanOrEqual(v - Vector256.Create((byte)'0'), Vector256.Create((byte)9));
        var symbol = Vector256.Equals(v, Vector256.Create((byte)'+'))
            | Vector256.Equals(v, Vector256.Create((byte)'/'))
            | Vector256.Equals(v, Vector256.Create((byte)'-'))
            | Vector256.Equals(v, Vector256.Create((byte)'_'));
        return (letter | digit | symbol).ExtractMostSignificantBits();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mask64(ref ushort origin, int index)
    {
        var a = Mask16(Vector256.LoadUnsafe(ref origin, (nuint)index));
        var b = Mask16(Vector256.LoadUnsafe(ref origin, (nuint)(index + 16)));
        var c = Mask16(Vector256.LoadUnsafe(ref origin, (nuint)(index + 32)));
        var d = Mask16(Vector256.LoadUnsafe(ref origin, (nuint)(index + 48)));
        return a | ((ulong)b << 16) | ((ulong)c << 32) | ((ulong)d << 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mask16(Vector256<ushort> v)
    {
        var folded = v | Vector256.Create((ushort)0x20);
        var letter = Vector256.LessThanOrEqual(folded - Vector256.Create((ushort)'a'), Vector256.Create((ushort)25));
        var digit = Vector256.LessThanOrEqual(v - Vector256.Create((ushort)'0'), Vector256.Create((ushort)9));
        var symbol = Vector256.Equals(v, Vector256.Create((ushort)'+'))
            | Vector256.Equals(v, Vector256.Create((ushort)'/'))
            | Vector256.Equals(v, Vector256.Create((ushort)'-'))
            | Vector256.Equals(v, Vector256.Create((ushort)'_'));
        return (letter | digit | symbol).ExtractMostSignificantBits();
    }
}
