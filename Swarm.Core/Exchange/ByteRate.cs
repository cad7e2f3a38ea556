namespace Swarm.Core.Exchange;

/// <summary>Shows a rate in bytes per second (rates are read by Swarm.Node's <c>Quantities.ParseRate</c>).</summary>
public static class ByteRate
{
    public static string Format(double bytesPerSecond) => Units.Bytes(bytesPerSecond) + "/s";
}

public static class Units
{
    public static string Bytes(double bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        int i = 0;
        while (bytes >= 1024 && i < units.Length - 1) { bytes /= 1024; i++; }
        return i == 0 ? $"{bytes:0} {units[i]}" : $"{bytes:0.0} {units[i]}";
    }
}
