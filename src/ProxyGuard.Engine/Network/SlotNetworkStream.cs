using System.Net.Sockets;

namespace ProxyGuard.Engine.Network;

/// <summary>An upstream connection's stream that gives back its slot of the process-wide connection bound when closed.</summary>
internal sealed class SlotNetworkStream(Socket socket, IDisposable slot) : NetworkStream(socket, ownsSocket: true)
{
    protected override void Dispose(bool disposing)
    {
        try
        {
            base.Dispose(disposing);
        }
        finally
        {
            slot.Dispose();
        }
    }
}
