using System.Buffers.Binary;
using System.Text;

namespace Swarm.Tests.Fuzz;

/// <summary>
/// A deterministic mutation fuzzer over a corpus (the in-process short run, and the long campaign's fallback without
/// afl-fuzz): each case is a corpus entry with one to four stacked mutations — bit flips, interesting bytes and
/// integers (MessagePack markers, lengths, limits), inserted, deleted, repeated and truncated ranges, splices with another
/// entry, and the target's dictionary words. The same seed gives the same cases on every machine.
/// </summary>
public sealed class Mutator
{
    private static readonly byte[] InterestingBytes = [0x00, 0x01, 0x02, 0x10, 0x1f, 0x20, 0x40, 0x7f, 0x80, 0x81, 0xfe, 0xff,
        0x90, 0x91, 0x92, 0x93, 0x95, 0x96, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
        0xd0, 0xd1, 0xd2, 0xd3, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, (byte)'"', (byte)'{', (byte)'}', (byte)'[', (byte)']', (byte)',', (byte)':', (byte)'\\'];

    private static readonly int[] InterestingInts = [0, 1, -1, 2, 16, 31, 32, 33, 64, 127, 128, 255, 256, 1023, 1024, 1400, 4096, 65535, 65536,
        0x7fff, 0x8000, 1 << 18, 1 << 24, 1 << 26, 0x3fffffff, 0x7ffffffe, int.MaxValue, int.MinValue];

    private readonly Random _random;
    private readonly IReadOnlyList<byte[]> _corpus;
    private readonly byte[][] _tokens;
    private readonly int _maxLength;

    public Mutator(int seed, IReadOnlyList<byte[]> corpus, IEnumerable<string> tokens, int maxLength)
    {
        if (corpus.Count == 0) throw new ArgumentException("an empty corpus", nameof(corpus));
        _random = new Random(seed);
        _corpus = corpus;
        _tokens = [.. tokens.Select(t => Encoding.Latin1.GetBytes(t))];
        _maxLength = maxLength;
    }

    /// <summary>The next mutated case.</summary>
    public byte[] Next()
    {
        var data = new List<byte>(_corpus[_random.Next(_corpus.Count)]);
        int rounds = 1 + _random.Next(4);
        for (int i = 0; i < rounds; i++) Mutate(data);
        if (data.Count > _maxLength) data.RemoveRange(_maxLength, data.Count - _maxLength);
        return [.. data];
    }

    private int Position(List<byte> data) => data.Count == 0 ? 0 : _random.Next(data.Count);

    private void Mutate(List<byte> data)
    {
        switch (_random.Next(12))
        {
            case 0 when data.Count > 0:
                {
                    int p = Position(data);
                    data[p] ^= (byte)(1 << _random.Next(8));
                    break;
                }
            case 1 when data.Count > 0:
                data[Position(data)] = (byte)_random.Next(256);
                break;
            case 2 when data.Count > 0:
                data[Position(data)] = InterestingBytes[_random.Next(InterestingBytes.Length)];
                break;
            case 3 when data.Count >= 4:
                {
                    int p = _random.Next(data.Count - 3);
                    Span<byte> b = stackalloc byte[4];
                    int v = _random.Next(3) == 0 ? data.Count + _random.Next(-2, 3) : InterestingInts[_random.Next(InterestingInts.Length)];
                    BinaryPrimitives.WriteInt32BigEndian(b, v);
                    for (int i = 0; i < 4; i++) data[p + i] = b[i];
                    break;
                }
            case 4:
                {
                    int n = 1 + _random.Next(8);
                    var bytes = new byte[n];
                    _random.NextBytes(bytes);
                    data.InsertRange(data.Count == 0 ? 0 : _random.Next(data.Count + 1), bytes);
                    break;
                }
            case 5 when data.Count > 1:
                {
                    int p = Position(data);
                    data.RemoveRange(p, Math.Min(data.Count - p, 1 + _random.Next(Math.Min(32, data.Count))));
                    break;
                }
            case 6 when data.Count > 1:
                {
                    int p = Position(data);
                    int n = Math.Min(data.Count - p, 1 + _random.Next(16));
                    var range = data.GetRange(p, n);
                    data.InsertRange(p, range);
                    break;
                }
            case 7 when data.Count > 0:
                {
                    int cut = _random.Next(data.Count);
                    data.RemoveRange(cut, data.Count - cut);
                    break;
                }
            case 8:
                {
                    var other = _corpus[_random.Next(_corpus.Count)];
                    if (other.Length == 0) break;
                    int from = _random.Next(other.Length);
                    int n = Math.Min(other.Length - from, 1 + _random.Next(64));
                    data.InsertRange(data.Count == 0 ? 0 : _random.Next(data.Count + 1), other.AsSpan(from, n).ToArray());
                    break;
                }
            case 9 or 10 when _tokens.Length > 0:
                {
                    var token = _tokens[_random.Next(_tokens.Length)];
                    int p = data.Count == 0 ? 0 : _random.Next(data.Count + 1);
                    if (_random.Next(2) == 0 || p + token.Length > data.Count) data.InsertRange(p, token);
                    else for (int i = 0; i < token.Length; i++) data[p + i] = token[i];
                    break;
                }
            default:
                if (data.Count > 0)
                {
                    int p = Position(data);
                    data[p] = (byte)(data[p] + _random.Next(-4, 5));
                }
                break;
        }
    }
}
