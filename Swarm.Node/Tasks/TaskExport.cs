using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>Writes verified content to a task's output; returns the content as it stands after the check (a rotten piece is fetched again).</summary>
public delegate Task<StoredContent> TaskExport(StoredContent content, string output, Bitfield? verifiedInMemory, IPEndPoint[] peers,
    IProgress<TransferProgress> progress, CancellationToken cancellationToken);
