using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace ProxyGuard.FunctionalTests.Reliability;

/// <summary>What a <see cref="FaultOrigin"/> does with each connection.</summary>
public enum FaultBehaviour
{
    /// <summary>Reads part of the request (head and a little of the body), then resets the connection (RST).</summary>
    ResetMidRequest,

    /// <summary>Reads the request head, sends a response head promising 1 MB and 1 KiB of it, then resets.</summary>
    ResetMidResponse,

    /// <summary>Reads the request head and never answers.</summary>
    Stall,

    /// <summary>Reads the request head and answers with bytes that are not HTTP.</summary>
    Malformed,

    /// <summary>Reads the request head, waits until <see cref="FaultOrigin.Release"/>, then answers 200.</summary>
    HoldThenOk,

    /// <summary>Answers 200 at once (used behind TLS with a bad certificate: the proxy must not get this far).</summary>
    Ok,
}

/// <summary>A raw TCP (optionally TLS) origin on 127.0.0.1 that misbehaves on purpose.</summary>
public sealed class FaultOrigin : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly FaultBehaviour _behaviour;
    private readonly X509Certificate2? _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _requestSeen = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _acceptLoop;
    private int _requests;

    public FaultOrigin(FaultBehaviour behaviour, X509Certificate2? certificate = null)
    {
        _behaviour = behaviour;
        _certificate = certificate;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = AcceptLoopAsync();
    }

    public int Port { get; }

    /// <summary>Connections on which a complete request head arrived.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Completes when the first request head arrives.</summary>
    public Task RequestSeen => _requestSeen.Task;

    /// <summary>Lets <see cref="FaultBehaviour.HoldThenOk"/> answer.</summary>
    public void Release() => _release.TrySetResult();

    /// <summary>A loopback port with nothing listening (bound, then closed).</summary>
    public static int ClosedPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => HandleAsync(socket));
        }
    }

    private async Task HandleAsync(Socket socket)
    {
        try
        {
            using var network = new NetworkStream(socket, ownsSocket: false);
            Stream stream = network;
            if (_certificate is not null)
            {
                var ssl = new SslStream(network, leaveInnerStreamOpen: true);
                stream = ssl;
                using var handshake = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                handshake.CancelAfter(TimeSpan.FromSeconds(30));
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = _certificate,
                    ApplicationProtocols = [SslApplicationProtocol.Http11],
                }, handshake.Token);
            }

            var head = await ReadHeadAsync(stream);
            if (head is null)
            {
                return;
            }

            Interlocked.Increment(ref _requests);
            _requestSeen.TrySetResult();
            switch (_behaviour)
            {
                case FaultBehaviour.ResetMidRequest:
                    // Some of the body, if any, then RST while the proxy is still sending.
                    var some = new byte[1024];
                    using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
                    {
                        try
                        {
                            _ = await stream.ReadAsync(some, cts.Token);
                        }
                        catch (OperationCanceledException)
                        {
                        }
                    }

                    Reset(socket);
                    return;
                case FaultBehaviour.ResetMidResponse:
                    await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"));
                    await stream.WriteAsync(new byte[1024]);
                    await stream.FlushAsync();
                    await Task.Delay(200);
                    Reset(socket);
                    return;
                case FaultBehaviour.Stall:
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                    return;
                case FaultBehaviour.Malformed:
                    await stream.WriteAsync("THIS IS NOT HTTP\0\r\n\u0001garbage\r\n\r\n"u8.ToArray());
                    await stream.FlushAsync();
                    return;
                case FaultBehaviour.HoldThenOk:
                    await _release.Task.WaitAsync(_stop.Token);
                    await WriteOkAsync(stream, "held-then-ok");
                    return;
                case FaultBehaviour.Ok:
                    await WriteOkAsync(stream, "ok");
                    return;
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException
                                       or System.Security.Authentication.AuthenticationException)
        {
            // The proxy gave up on us (expected for bad certificates, stalls and resets).
        }
        finally
        {
            socket.Dispose();
        }
    }

    private static async Task WriteOkAsync(Stream stream, string body)
    {
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
        await stream.FlushAsync();
    }

    private static void Reset(Socket socket)
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    private async Task<string?> ReadHeadAsync(Stream stream)
    {
        var buffer = new List<byte>();
        var one = new byte[1];
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        cts.CancelAfter(TimeSpan.FromSeconds(60));
        while (buffer.Count < 64 * 1024)
        {
            if (await stream.ReadAsync(one, cts.Token) == 0)
            {
                return null;
            }

            buffer.Add(one[0]);
            var n = buffer.Count;
            if (n >= 4 && buffer[n - 4] == '\r' && buffer[n - 3] == '\n' && buffer[n - 2] == '\r' && buffer[n - 1] == '\n')
            {
                return Encoding.ASCII.GetString(buffer.ToArray());
            }
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        _release.TrySetResult();
        try
        {
            await _acceptLoop;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
        _listener.Dispose();
    }
}
