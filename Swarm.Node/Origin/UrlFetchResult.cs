using Swarm.Core.Content;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>How a URL was fetched.</summary>
/// <param name="Content">The verified content (a sealed entry, or the live entry of an ingest that another node ran).</param>
/// <param name="FromOrigin">This node ingested it from the origin.</param>
/// <param name="Contenders">Other nodes that asked for the same URL at the same time (cold start).</param>
/// <param name="SwarmId">The swarm it was fetched or ingested in.</param>
/// <param name="VerifiedInMemory">The pieces this fetch verified in memory itself (from peers or the origin): the export re-hashes only the others.</param>
/// <param name="Validators">The origin's validators the content was fetched under (recorded for later requests), when known.</param>
public sealed record UrlFetchResult(StoredContent Content, bool FromOrigin, int Contenders, ContentId SwarmId, Bitfield? VerifiedInMemory = null, OriginValidators? Validators = null);
