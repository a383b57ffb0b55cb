using System.Buffers;
using System.Runtime.CompilerServices;

namespace ProxyGuard.Inspection.Decoding;

/// <summary>
/// Scratch arrays sized by what the sandbox sent. Up to 1 MiB they come from the shared pool; larger ones are plain
/// allocations that the GC takes back once the scan is over. The shared pool keeps what is returned to it per core
/// and lets go of an array only minutes after its last use, so pooling multi-megabyte arrays would keep the memory of
/// a burst of large bodies long after the burst.
/// </summary>
internal static class ScratchArrays<T>
{
    private static readonly int MaxPooledLength = 1024 * 1024 / Unsafe.SizeOf<T>();

    public static T[] Rent(int minimumLength) =>
        minimumLength <= MaxPooledLength ? ArrayPool<T>.Shared.Rent(minimumLength) : GC.AllocateUninitializedArray<T>(minimumLength);

    public static void Return(T[] array)
    {
        if (array.Length <= MaxPooledLength)
        {
            ArrayPool<T>.Shared.Return(array);
        }
    }
}
