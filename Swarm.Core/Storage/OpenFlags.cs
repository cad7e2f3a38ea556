namespace Swarm.Core.Storage;

/// <summary>What <c>fcntl(F_GETFL)</c> says about how a file was opened, as far as writing into it goes.</summary>
public readonly record struct OpenFlags(bool Writable, bool Appends, bool NonBlocking);
