using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Storage;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>
/// Live content (served while the ingester still reads the origin): the signed piece hashes that travel ahead of each
/// piece, and the seal, the ingester's signature over the final manifest. Seals received from peers are candidates,
/// checked once the content is complete; the first that checks out turns the live entry into its sealed one.
/// </summary>
internal sealed class LiveSeal
{
    private const int MaxCandidates = 4;
    private readonly Lock _sync = new();
    private readonly List<byte[]> _candidates = [];
    private readonly TaskCompletionSource _sealed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[]? _signature;

    /// <summary>The ingester's signature over the sealed manifest, once checked against the complete live content.</summary>
    public byte[]? Signature => Volatile.Read(ref _signature);
    /// <summary>Completes when the live content is sealed (after <see cref="Signal"/>).</summary>
    public Task SealedTask => _sealed.Task;
    /// <summary>The sealed (ordinary) entry made from the live content, once sealed.</summary>
    public StoredContent? Sealed { get; private set; }

    public static SignedPieceHash SignedHash(StoredContent content, int piece) =>
        new(piece, content.Manifest.PieceHash(piece).ToArray(), content.Manifest.PieceSignature(piece).ToArray());

    /// <summary>The signed hashes of the held pieces, in messages of at most <see cref="WireLimits.MaxPieceHashEntries"/>.</summary>
    public static IEnumerable<PieceHashes> SignedHashes(StoredContent content, Bitfield held)
    {
        var batch = new List<SignedPieceHash>();
        for (int i = 0; i < held.Length; i++)
        {
            if (!held[i]) continue;
            batch.Add(SignedHash(content, i));
            if (batch.Count == WireLimits.MaxPieceHashEntries)
            {
                yield return new PieceHashes(batch);
                batch = [];
            }
        }
        if (batch.Count > 0) yield return new PieceHashes(batch);
    }

    /// <summary>Adds received signed hashes to the manifest. False when an entry is not the ingester's (the sender lies).</summary>
    public static bool AddPieceHashes(StoredContent content, IReadOnlyList<SignedPieceHash> entries)
    {
        foreach (var e in entries)
            if ((uint)e.Piece >= (uint)content.Layout.PieceCount || !content.Manifest.TryAddPieceHash(e.Piece, e.Hash, e.Signature)) return false;
        return true;
    }

    /// <summary>Signed hashes that came before the manifest did: kept with the peer until it is known.</summary>
    public static void Defer(PeerState peer, IReadOnlyList<SignedPieceHash> entries)
    {
        var pending = peer.PendingPieceHashes ??= [];
        if (pending.Count + entries.Count > WireLimits.MaxBitfieldBytes * 8) throw new WireProtocolException("too many piece hashes before the manifest");
        pending.AddRange(entries);
    }

    /// <summary>With the manifest known: adds the hashes the peer sent before. False when one is not the ingester's.</summary>
    public static bool ApplyDeferred(StoredContent content, PeerState peer)
    {
        if (peer.PendingPieceHashes is not { } pending) return true;
        peer.PendingPieceHashes = null;
        return AddPieceHashes(content, pending);
    }

    /// <summary>This node is the ingester and sealed the content itself.</summary>
    public void Record(byte[] signature, StoredContent sealedContent)
    {
        Sealed = sealedContent;
        Volatile.Write(ref _signature, signature);
    }

    /// <summary>Completes <see cref="SealedTask"/>.</summary>
    public void Signal() => _sealed.TrySetResult();

    /// <summary>A seal from a peer, kept as a candidate (a few at most, each once). False when it adds nothing.</summary>
    public bool AddCandidate(byte[] signature)
    {
        lock (_sync)
        {
            if (_candidates.Count >= MaxCandidates || _candidates.Any(c => c.AsSpan().SequenceEqual(signature))) return false;
            _candidates.Add(signature);
            return true;
        }
    }

    /// <summary>
    /// With the live content complete, seals it with the first candidate the store accepts (candidates that are not the
    /// ingester's are dropped). Returns the sealed entry (also in <see cref="Sealed"/>), or null.
    /// </summary>
    public StoredContent? TrySeal(StoredContent content, ContentStore store, ILogger logger)
    {
        List<byte[]> candidates;
        lock (_sync) candidates = [.. _candidates];
        foreach (var signature in candidates)
        {
            try
            {
                var sealedContent = store.SealLive(content, signature);
                Record(signature, sealedContent);
                logger.LogInformation("live {Id} sealed as {Final}", content.Id, sealedContent.Id);
                return sealedContent;
            }
            catch (InvalidDataException)
            {
                lock (_sync) _candidates.Remove(signature); // not the ingester's
            }
            catch (IOException e)
            {
                logger.LogWarning("could not seal {Id}: {Error}", content.Id, e.Message);
                return null;
            }
        }
        return null;
    }
}
