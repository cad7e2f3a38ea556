using System.Diagnostics;

namespace Swarm.Tests.Fuzz;

/// <summary>
/// One decoder of untrusted bytes under fuzzing: what it is fed (<see cref="Decode"/>), which exceptions are its documented
/// failure (<see cref="Documented"/>; anything else escaping is a finding), and how many bytes one call may allocate for an
/// input of a given length (<see cref="AllocationBound"/>: <c>BaseBytes + BytesPerInputByte × length</c>).
/// </summary>
/// <param name="Name">The target's name: the corpus folder, the afl-fuzz run and the test case are called this.</param>
/// <param name="Decoder">The code under test, as a reader would look it up.</param>
/// <param name="Decode">Runs the decoder (and the checks the harness adds on what it accepted) over one input.</param>
/// <param name="Documented">The decoder's documented failure; empty when it must never throw on bad input.</param>
/// <param name="BaseBytes">Allocation allowed for any input.</param>
/// <param name="BytesPerInputByte">Allocation allowed per input byte.</param>
/// <param name="MaxInput">Inputs are cut to this length first (the decoder's own limit, or a size no real input reaches).</param>
/// <param name="ShortRunMutations">Mutated inputs the in-process short run (the xunit test) tries.</param>
/// <param name="Tokens">Words the mutators insert (and afl-fuzz gets as its dictionary).</param>
public sealed record FuzzTarget(
    string Name,
    string Decoder,
    Action<byte[]> Decode,
    Type[] Documented,
    long BaseBytes,
    long BytesPerInputByte,
    int MaxInput,
    int ShortRunMutations,
    string[] Tokens)
{
    /// <summary>Allocation allowed for one call on an input of <paramref name="length"/> bytes.</summary>
    public long AllocationBound(int length) => BaseBytes + BytesPerInputByte * length;

    /// <summary>
    /// More allocation an input may declare within the decoder's documented limits (a live manifest's pieces: about 100
    /// bytes each, at most <see cref="Swarm.Core.Content.Manifest.MaxLivePieces"/>); none when null.
    /// </summary>
    public Func<byte[], long>? DeclaredBytes { get; init; }

    /// <summary>Allocation allowed for one call on <paramref name="input"/>.</summary>
    public long AllocationBound(byte[] input) => AllocationBound(input.Length) + (DeclaredBytes?.Invoke(input) ?? 0);

    public bool IsDocumented(Exception e) => Documented.Any(t => t.IsInstanceOfType(e));

    public override string ToString() => Name;
}

/// <summary>What one execution gave.</summary>
public enum FuzzOutcome
{
    /// <summary>The decoder accepted the input (and the harness's checks on the result held).</summary>
    Accepted,
    /// <summary>The decoder refused it with its documented failure.</summary>
    Rejected,
}

/// <summary>A broken contract: an undocumented exception, an allocation over the bound, or a check on an accepted result.</summary>
public sealed class FuzzViolationException : Exception
{
    public FuzzViolationException(string target, string kind, string message, Exception? inner = null) : base($"{target}: {kind}: {message}", inner)
    {
        Target = target;
        Kind = kind;
    }

    public FuzzViolationException() { }
    public FuzzViolationException(string message) : base(message) { }
    public FuzzViolationException(string message, Exception inner) : base(message, inner) { }

    public string Target { get; } = "";
    /// <summary><c>exception</c>, <c>allocation</c> or <c>check</c>.</summary>
    public string Kind { get; } = "";
}

/// <summary>Raised by a harness when a result it checks is wrong (a round trip that does not hold, for example).</summary>
public sealed class FuzzCheckException : Exception
{
    public FuzzCheckException(string message) : base(message) { }
    public FuzzCheckException() { }
    public FuzzCheckException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Runs one input through a target and checks the contract: the one place both the xunit run and afl-fuzz go through.</summary>
public static class FuzzExecutor
{
    /// <summary>
    /// Executes <paramref name="input"/> (cut to the target's <see cref="FuzzTarget.MaxInput"/>); throws
    /// <see cref="FuzzViolationException"/> when the contract breaks. Under afl-fuzz that exception is the crash.
    /// </summary>
    public static FuzzOutcome Execute(FuzzTarget target, byte[] input, bool guard = true)
    {
        if (input.Length > target.MaxInput) input = input[..target.MaxInput];
        if (guard && KnownFindings.Guard(target, input) is { } known) throw known;
        var (outcome, used) = Measure(target, input);
        long bound = target.AllocationBound(input);
        // The first call down a path also pays for one-time work (static constructors, resource strings of a first
        // exception, the HTTP stack's caches): an input over the bound is measured again, and only the repeat counts.
        if (used > bound) (_, used) = Measure(target, input);
        if (used > bound)
            throw new FuzzViolationException(target.Name, "allocation", $"{used:N0} bytes allocated for a {input.Length}-byte input; the bound is {bound:N0}");
        return outcome;
    }

    private static (FuzzOutcome Outcome, long Allocated) Measure(FuzzTarget target, byte[] input)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        FuzzOutcome outcome;
        try
        {
            target.Decode(input);
            outcome = FuzzOutcome.Accepted;
        }
        catch (FuzzCheckException e)
        {
            throw new FuzzViolationException(target.Name, "check", e.Message, e);
        }
        catch (Exception e) when (target.IsDocumented(e))
        {
            outcome = FuzzOutcome.Rejected;
        }
        catch (Exception e)
        {
            throw new FuzzViolationException(target.Name, "exception", $"{e.GetType().FullName}: {e.Message}", e);
        }
        return (outcome, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    /// <summary>As <see cref="Execute"/>, also timing the call (for the in-process run's hang check).</summary>
    public static (FuzzOutcome Outcome, TimeSpan Elapsed) ExecuteTimed(FuzzTarget target, byte[] input, bool guard = true)
    {
        var watch = Stopwatch.StartNew();
        var outcome = Execute(target, input, guard);
        return (outcome, watch.Elapsed);
    }
}
