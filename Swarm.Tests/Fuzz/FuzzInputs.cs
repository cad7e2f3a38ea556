using System.Buffers;

namespace Swarm.Tests.Fuzz;

/// <summary>Small helpers the harnesses share: multi-segment sequences, and a scratch folder for the file decoders.</summary>
public static class FuzzInputs
{
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>The bytes as a sequence of two segments split at <paramref name="split"/> (as a socket's reads may cut them).</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, int split)
    {
        split = Math.Clamp(split, 0, data.Length);
        var first = new Segment(data.AsMemory(0, split), 0);
        var last = first.Append(data.AsMemory(split));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private static readonly Lazy<string> ScratchFolder = new(() =>
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string dir = Path.Combine(root, $"swarm-fuzz-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        return dir;
    });

    /// <summary>A data directory of this process's own (in memory where /dev/shm exists), for decoders that read a file.</summary>
    public static string Scratch
    {
        get
        {
            string dir = ScratchFolder.Value;
            if (!Directory.Exists(dir)) Directory.CreateDirectory(dir); // again after DeleteScratch
            return dir;
        }
    }

    /// <summary>Writes the input as <paramref name="fileName"/> in the scratch folder and returns its path.</summary>
    public static string WriteScratch(string fileName, byte[] input)
    {
        string path = Path.Combine(Scratch, fileName);
        File.WriteAllBytes(path, input);
        return path;
    }

    /// <summary>Removes the scratch folder (end of a run).</summary>
    public static void DeleteScratch()
    {
        if (ScratchFolder.IsValueCreated)
        {
            try { Directory.Delete(ScratchFolder.Value, recursive: true); }
            catch (IOException) { }
        }
    }
}
