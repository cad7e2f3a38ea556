namespace Swarm.Node;

/// <summary>The whole content does not match the digest the user asked for.</summary>
public sealed class DigestMismatchException : Exception
{
    public DigestMismatchException(string message) : base(message) { }
    public DigestMismatchException() { }
    public DigestMismatchException(string message, Exception inner) : base(message, inner) { }
}
