namespace Swarm.Core.Wire;

/// <summary>Per-kind maximum frame lengths, checked as soon as the 5-byte frame prefix is in, before anything else is buffered.</summary>
public static class WireLimits
{
    public const int ProtocolVersion = 1;
    /// <summary>Largest block a peer may request or send (the default block is 128 KiB).</summary>
    public const int MaxBlockLength = 256 * 1024;
    /// <summary>Largest manifest accepted: 256 Ki pieces (4 TiB at 16 MiB pieces).</summary>
    public const int MaxManifestLength = 8 * 1024 * 1024 + 4096;
    public const int MaxBitfieldBytes = (MaxManifestLength / 32 + 7) / 8;
    public const int MaxFrameLength = MaxManifestLength + 1024;
    /// <summary>Requests a peer may have queued with us; more are rejected.</summary>
    public const int MaxQueuedRequests = 512;
    /// <summary>Addresses in one peer-exchange message.</summary>
    public const int MaxPeerListEntries = 50;
    /// <summary>Signed piece hashes in one message (about 100 bytes each).</summary>
    public const int MaxPieceHashEntries = 8192;

    /// <summary>Largest frame length (kind byte + body) allowed for a kind; 0 for an unknown kind.</summary>
    public static int MaxFrame(MessageKind kind) => kind switch
    {
        MessageKind.Hello => 1024,
        MessageKind.HelloProof => 256,
        MessageKind.Bitfield => MaxBitfieldBytes + 16,
        MessageKind.HaveAll or MessageKind.HaveNone or MessageKind.Interested or MessageKind.NotInterested
            or MessageKind.Choke or MessageKind.Unchoke or MessageKind.HashesRequest => 16,
        MessageKind.Have => 16,
        MessageKind.Request or MessageKind.Cancel or MessageKind.Reject => 64,
        MessageKind.Block => 64 + MaxBlockLength,
        MessageKind.Hashes => MaxFrameLength,
        MessageKind.PeerList => 2048,
        MessageKind.PieceHashes => 16 + MaxPieceHashEntries * 112,
        MessageKind.Seal => 128,
        _ => 0,
    };
}
