using Swarm.Core.Content;

namespace Swarm.Core.Storage;

/// <summary>
/// Stored pieces failed their hash check: their bytes on disk changed after they were verified (bit rot, a bad disk, an
/// outside write that kept size and modification time). They were dropped from the entry and must be fetched again.
/// </summary>
public sealed class PieceRottenException : IOException
{
    public PieceRottenException(ContentId id, IReadOnlyList<int> pieces, string message) : base(message)
    {
        Id = id;
        Pieces = pieces;
    }

    public PieceRottenException() : this("stored pieces failed their hash check") { }
    public PieceRottenException(string message) : base(message) { }
    public PieceRottenException(string message, Exception inner) : base(message, inner) { }

    public ContentId Id { get; }
    public IReadOnlyList<int> Pieces { get; } = [];
}
