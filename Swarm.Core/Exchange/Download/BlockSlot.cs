namespace Swarm.Core.Exchange.Download;

/// <summary>One block of a piece being assembled: who was asked for it (two peers at most, in end game) and who sent it.</summary>
internal struct BlockSlot
{
    public PeerState? First;
    public PeerState? Second;
    public PeerState? From;
    public bool Received;
}
