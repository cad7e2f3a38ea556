namespace Swarm.Tests.Support;

/// <summary>A fresh directory under the system temp folder, removed on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "swarm-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <summary>Writes a file of <paramref name="length"/> pseudo-random bytes from a fixed seed and returns its path.</summary>
    public string WriteRandomFile(string name, long length, int seed = 1)
    {
        string path = Combine(name);
        var random = new Random(seed);
        var buffer = new byte[1024 * 1024];
        using var fs = File.Create(path);
        long left = length;
        while (left > 0)
        {
            int n = (int)Math.Min(buffer.Length, left);
            random.NextBytes(buffer.AsSpan(0, n));
            fs.Write(buffer, 0, n);
            left -= n;
        }
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
