using System.Buffers.Binary;
using System.Text;

namespace ProxyGuard.Engine.Connect;

/// <summary>Reads the SNI from a TLS ClientHello (RFC 8446 4.1.2, RFC 6066 3) without consuming it.</summary>
internal static class TlsClientHello
{
    public enum ParseStatus
    {
        NeedMoreData,
        NotTls,
        Invalid,
        Complete,
    }

    /// <summary>True when the bytes start like a TLS handshake record (content type 22, version 3.x).</summary>
    public static bool LooksLikeTls(ReadOnlySpan<byte> data) =>
        data.Length >= 1 && data[0] == 0x16 && (data.Length < 2 || data[1] == 0x03);

    /// <summary>Parses the first handshake record; <paramref name="serverName"/> is null when no SNI was sent.</summary>
    public static ParseStatus TryGetServerName(ReadOnlySpan<byte> data, out string? serverName)
    {
        serverName = null;
        if (data.Length < 5)
        {
            return data.Length == 0 || LooksLikeTls(data) ? ParseStatus.NeedMoreData : ParseStatus.NotTls;
        }

        if (data[0] != 0x16 || data[1] != 0x03)
        {
            return ParseStatus.NotTls;
        }

        var recordLength = BinaryPrimitives.ReadUInt16BigEndian(data.Slice(3, 2));
        if (recordLength is < 4 or > 16384 + 2048)
        {
            return ParseStatus.Invalid;
        }

        if (data.Length < 5 + recordLength)
        {
            return ParseStatus.NeedMoreData;
        }

        var hs = data.Slice(5, recordLength);
        if (hs[0] != 0x01)
        {
            return ParseStatus.Invalid;
        }

        var hsLength = (hs[1] << 16) | (hs[2] << 8) | hs[3];
        if (hsLength > hs.Length - 4)
        {
            // A ClientHello split over several records: rare in practice (huge post-quantum key shares
            // can do it); treat as invalid rather than reassemble unboundedly.
            return ParseStatus.Invalid;
        }

        var body = hs.Slice(4, hsLength);
        var p = 2 + 32; // legacy_version + random
        if (body.Length < p + 1)
        {
            return ParseStatus.Invalid;
        }

        p += 1 + body[p]; // session id
        if (body.Length < p + 2)
        {
            return ParseStatus.Invalid;
        }

        p += 2 + BinaryPrimitives.ReadUInt16BigEndian(body.Slice(p, 2)); // cipher suites
        if (body.Length < p + 1)
        {
            return ParseStatus.Invalid;
        }

        p += 1 + body[p]; // compression methods
        if (body.Length == p)
        {
            return ParseStatus.Complete;
        }

        if (body.Length < p + 2)
        {
            return ParseStatus.Invalid;
        }

        var extensionsLength = BinaryPrimitives.ReadUInt16BigEndian(body.Slice(p, 2));
        p += 2;
        if (body.Length < p + extensionsLength)
        {
            return ParseStatus.Invalid;
        }

        var extensions = body.Slice(p, extensionsLength);
        while (extensions.Length >= 4)
        {
            var type = BinaryPrimitives.ReadUInt16BigEndian(extensions);
            var length = BinaryPrimitives.ReadUInt16BigEndian(extensions[2..]);
            if (extensions.Length < 4 + length)
            {
                return ParseStatus.Invalid;
            }

            var ext = extensions.Slice(4, length);
            if (type == 0)
            {
                if (ext.Length < 5 || ext[2] != 0)
                {
                    return ParseStatus.Invalid;
                }

                var nameLength = BinaryPrimitives.ReadUInt16BigEndian(ext[3..]);
                if (ext.Length < 5 + nameLength || nameLength == 0)
                {
                    return ParseStatus.Invalid;
                }

                var name = ext.Slice(5, nameLength);
                foreach (var b in name)
                {
                    if (b is < 0x21 or > 0x7E)
                    {
                        return ParseStatus.Invalid;
                    }
                }

                serverName = Encoding.ASCII.GetString(name);
                return ParseStatus.Complete;
            }

            extensions = extensions[(4 + length)..];
        }

        return ParseStatus.Complete;
    }
}
