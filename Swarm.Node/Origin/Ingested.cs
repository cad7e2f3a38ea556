using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>What an ingest from an origin produced: the sealed entry and the origin's validators, with the whole content's SHA-256.</summary>
public sealed record Ingested(StoredContent Content, OriginValidators Validators);
