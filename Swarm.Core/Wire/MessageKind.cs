namespace Swarm.Core.Wire;

/// <summary>The kind byte that follows a frame's length prefix. A frame of length 0 is a keep-alive.</summary>
public enum MessageKind : byte
{
    KeepAlive = 0,
    Hello = 1,
    HelloProof = 2,
    Bitfield = 3,
    HaveAll = 4,
    HaveNone = 5,
    Have = 6,
    Interested = 7,
    NotInterested = 8,
    Choke = 9,
    Unchoke = 10,
    Request = 11,
    Block = 12,
    Reject = 13,
    Cancel = 14,
    HashesRequest = 15,
    Hashes = 16,
    /// <summary>Peer exchange: addresses of other peers of the same content.</summary>
    PeerList = 17,
    /// <summary>Live content: signed hashes of pieces the sender holds, sent before the have or bitfield that names them.</summary>
    PieceHashes = 18,
    /// <summary>Live content: the ingester's signature over the sealed manifest, once the ingest is complete.</summary>
    Seal = 19,
}

/// <summary>Why a request was refused.</summary>
public enum RejectReason
{
    NotAvailable = 1,
    Choked = 2,
    TooManyRequests = 3,
    Invalid = 4,
    Cancelled = 5,
    ShuttingDown = 6,
    /// <summary>Not from me now: other peers hold this piece (seed steering); ask them.</summary>
    Elsewhere = 7,
}

/// <summary>A peer broke the wire protocol: the connection is closed, the node carries on.</summary>
public class WireProtocolException : Exception
{
    public WireProtocolException(string message) : base(message) { }
    public WireProtocolException(string message, Exception inner) : base(message, inner) { }
    public WireProtocolException() { }
}

/// <summary>A second connection to a peer already connected: closed by agreement (lower dialler id wins), not an error.</summary>
public sealed class DuplicateConnectionException : WireProtocolException
{
    public DuplicateConnectionException(string message) : base(message) { }
    public DuplicateConnectionException(string message, Exception inner) : base(message, inner) { }
    public DuplicateConnectionException() { }
}

/// <summary>The peer hung up during the handshake (often the ordinary end of a duplicate connection both sides dialled).</summary>
public sealed class PeerClosedException(string message) : WireProtocolException(message);
