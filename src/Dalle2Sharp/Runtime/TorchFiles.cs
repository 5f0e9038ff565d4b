using System.Buffers.Binary;
using System.Collections;
using System.Numerics;
using System.Text;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Dalle2Sharp.Runtime;

/// <summary>
/// Reads state dicts from PyTorch <c>.pth</c> files in both serializations: the zip format of
/// PyTorch ≥ 1.6 (through TorchSharp.PyBridge) and the older "legacy" stream (here), in which many
/// published weights still are — LPIPS' v0.1 linear heads, torchvision's 2017 backbones. PyBridge
/// refuses the legacy format and Razorvine's unpickler keeps one global constructor table (which
/// PyBridge fills), so the legacy stream is read by the small pickle machine below: the opcodes
/// torch.save emits for state dicts, nothing more.
/// </summary>
public static class TorchFiles
{
    /// <summary>
    /// Writes a (nested) state dict as torch.save does, atomically. Tensors that are views into a larger buffer (the flat
    /// optimizer's parameters, moments and EMA copies) are written as compact copies: PyBridge writes a view's own
    /// elements but keeps its storage offset, which would make the file unreadable.
    /// </summary>
    public static void SaveStateDict(string path, IDictionary root)
    {
        using var scope = NewDisposeScope();
        var compact = Compact(root);
        AtomicFile.Write(path, stream => PyTorchPickler.PickleStateDict(stream, compact, leaveOpen: true));
    }

    private static IDictionary Compact(IDictionary source)
    {
        IDictionary result = source is System.Collections.Specialized.OrderedDictionary
            ? new System.Collections.Specialized.OrderedDictionary() : new Hashtable();
        foreach (DictionaryEntry e in source) result[e.Key] = CompactValue(e.Value);
        return result;
    }

    private static object? CompactValue(object? value) => value switch
    {
        Tensor t when t.storage_offset() != 0 || !t.is_contiguous() => t.detach().clone(),
        IDictionary d => Compact(d),
        IList list and not Array => new ArrayList(list.Cast<object?>().Select(CompactValue).ToArray()),
        _ => value,
    };

    /// <summary>Name → tensor (CPU). A file that is neither format, or damaged, is the user's to fix: <see cref="UserInputException"/>.</summary>
    public static Hashtable LoadStateDict(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            Span<byte> head = stackalloc byte[4];
            stream.ReadExactly(head);
            stream.Position = 0;
            return head.SequenceEqual("PK\u0003\u0004"u8) ? PyTorchUnpickler.UnpickleStateDict(stream) : LegacyFormat.Read(stream);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new UserInputException($"{path}: not a readable PyTorch state dict ({e.Message})", e);
        }
    }

    /// <summary>
    /// The tensors of a TorchScript archive (torch.jit.save: OpenAI's released CLIP .pt files) by their
    /// attribute paths ("visual.conv1.weight"), read from the archive's data.pkl and data/ entries without a
    /// TorchScript runtime: modules are pickled as objects whose BUILD state holds their attributes.
    /// </summary>
    public static Dictionary<string, Tensor> LoadTorchScriptTensors(string path)
    {
        try
        {
            using var zip = System.IO.Compression.ZipFile.OpenRead(path);
            var pickle = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)
                && e.FullName.Count(c => c == '/') == 1)
                ?? throw new InvalidDataException("no <name>/data.pkl: not a TorchScript archive");
            string prefix = pickle.FullName[..^"data.pkl".Length];
            var machine = new PickleMachine(new MemoryStream(ReadEntry(pickle)));
            var root = machine.Load();
            foreach (var (key, storage) in machine.Storages)
            {
                var entry = zip.GetEntry($"{prefix}data/{key}") ?? throw new InvalidDataException($"storage {key} is missing from the archive");
                storage.Bytes = ReadEntry(entry);
            }
            var tensors = new Dictionary<string, Tensor>();
            Walk(root, "", tensors, depth: 0);
            return tensors;
        }
        catch (Exception e) when (e is not OutOfMemoryException and not UserInputException)
        {
            throw new UserInputException($"{path}: not a readable TorchScript archive ({e.Message})", e);
        }
    }

    /// <summary>An archive entry's bytes, its declared size checked (64-bit) before allocating.</summary>
    private static byte[] ReadEntry(System.IO.Compression.ZipArchiveEntry entry)
    {
        if (entry.Length < 0 || entry.Length > Array.MaxLength)
            throw new InvalidDataException($"{entry.FullName} claims {entry.Length} bytes");
        var bytes = new byte[entry.Length];
        using var stream = entry.Open();
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>Module nesting deeper than this is not a model but a damaged or hostile file.</summary>
    private const int MaxModuleDepth = 64;

    private static void Walk(object? node, string path, Dictionary<string, Tensor> tensors, int depth)
    {
        if (depth > MaxModuleDepth) throw new InvalidDataException($"modules nested deeper than {MaxModuleDepth} at {path}");
        switch (node)
        {
            case PendingTensor tensor:
                tensors[path] = tensor.Materialize();
                break;
            case PyObject { State: IDictionary state }:
                foreach (DictionaryEntry entry in state)
                    if (entry.Key is string name) Walk(entry.Value, path.Length == 0 ? name : $"{path}.{name}", tensors, depth + 1);
                break;
        }
    }

    /// <summary>torch.save's pre-1.6 stream: magic, protocol, sys info, the object, storage keys, storage bytes.</summary>
    private static class LegacyFormat
    {
        private static readonly BigInteger Magic = BigInteger.Parse("119547037146038801333356");

        public static Hashtable Read(Stream stream)
        {
            var machine = new PickleMachine(stream);
            if (machine.Load() is not BigInteger magic || magic != Magic) throw new InvalidDataException("not a PyTorch file (magic number)");
            if (machine.Load() is not long protocol || protocol != 1001) throw new InvalidDataException("unknown legacy protocol version");
            if (machine.Load() is IDictionary info && info["little_endian"] is false)
                throw new InvalidDataException("big-endian files are not supported");
            var root = machine.Load();
            var keys = (List<object?>)machine.Load()!;
            Span<byte> count = stackalloc byte[8];
            foreach (string key in keys.Cast<string>())
            {
                var storage = machine.Storages[key];
                stream.ReadExactly(count);
                long elements = BinaryPrimitives.ReadInt64LittleEndian(count);
                // A size read from the file: checked against what the file holds before allocating.
                long remaining = stream.CanSeek ? stream.Length - stream.Position : long.MaxValue;
                if (elements < 0 || elements > Array.MaxLength / storage.ElementSize || elements * storage.ElementSize > remaining)
                    throw new InvalidDataException($"storage {key} claims {elements} elements of {storage.ElementSize} bytes; " +
                                                   $"the file holds {remaining} more bytes");
                storage.Bytes = new byte[elements * storage.ElementSize];
                stream.ReadExactly(storage.Bytes);
            }
            if (root is not IDictionary dict) throw new InvalidDataException("the file holds no dictionary of tensors");
            var result = new Hashtable();
            foreach (DictionaryEntry entry in dict)
                if (entry.Value is PendingTensor pending) result[(string)entry.Key] = pending.Materialize();
            return result;
        }
    }

    private sealed record Global(string Module, string Name)
    {
        public string FullName => $"{Module}.{Name}";
    }

    private sealed class Storage(ScalarType dtype, int elementSize)
    {
        public ScalarType DType { get; } = dtype;
        public int ElementSize { get; } = elementSize;
        public byte[]? Bytes { get; set; }
    }

    /// <summary>A storage view (legacy files could pickle one): the root storage and an element offset.</summary>
    private sealed record StorageView(Storage Root, long Offset);

    /// <summary>A tensor whose storage bytes come after the pickle: built once they are read.</summary>
    private sealed record PendingTensor(StorageView Storage, long Offset, long[] Size, long[] Stride)
    {
        public Tensor Materialize()
        {
            var root = Storage.Root;
            var bytes = root.Bytes ?? throw new InvalidDataException("a tensor's storage bytes are missing");
            var flat = empty(bytes.Length / root.ElementSize, root.DType);
            flat.bytes = bytes;
            return flat.as_strided(Size, Stride, Storage.Offset + Offset).contiguous();
        }
    }

    /// <summary>An object the machine does not model: its class, arguments and BUILD state (a TorchScript module's attributes).</summary>
    private sealed record PyObject(Global Type, object? Args)
    {
        public object? State { get; set; }
    }

    private sealed class PickleMachine(Stream stream)
    {
        private readonly BinaryReader _in = new(stream, Encoding.UTF8, leaveOpen: true);

        /// <summary>A length read from the file: checked against what the file still holds before it is allocated.</summary>
        private byte[] ReadCounted(long length)
        {
            long remaining = _in.BaseStream.CanSeek ? _in.BaseStream.Length - _in.BaseStream.Position : int.MaxValue;
            if (length < 0 || length > remaining)
                throw new InvalidDataException($"pickle item claims {length} bytes; the file holds {remaining} more");
            return _in.ReadBytes((int)length);
        }
        private readonly Dictionary<long, object?> _memo = [];
        private readonly List<object?> _stack = [];
        private readonly Stack<int> _marks = new();
        public Dictionary<string, Storage> Storages { get; } = [];

        private object? Pop()
        {
            var value = _stack[^1];
            _stack.RemoveAt(_stack.Count - 1);
            return value;
        }

        private List<object?> PopToMark()
        {
            int mark = _marks.Pop();
            var items = _stack.GetRange(mark, _stack.Count - mark);
            _stack.RemoveRange(mark, _stack.Count - mark);
            return items;
        }

        private string Line()
        {
            var text = new StringBuilder();
            for (char c; (c = (char)_in.ReadByte()) != '\n';) text.Append(c);
            return text.ToString();
        }

        private static long Integer(object? value) => value switch
        {
            long l => l,
            BigInteger b => (long)b,
            _ => throw new InvalidDataException($"expected an integer, got {value?.GetType().Name ?? "None"}"),
        };

        public object? Load()
        {
            _memo.Clear();
            _stack.Clear();
            _marks.Clear();
            while (true)
            {
                byte op = _in.ReadByte();
                switch (op)
                {
                    case 0x80: _in.ReadByte(); break;                                   // PROTO
                    case 0x95: _in.ReadInt64(); break;                                  // FRAME
                    case (byte)'.': return Pop();                                        // STOP
                    case (byte)'(': _marks.Push(_stack.Count); break;                    // MARK
                    case (byte)'}': _stack.Add(new OrderedDictionary<object, object?>()); break;
                    case (byte)']': _stack.Add(new List<object?>()); break;
                    case (byte)')': _stack.Add(Array.Empty<object?>()); break;
                    case (byte)'N': _stack.Add(null); break;
                    case 0x88: _stack.Add(true); break;
                    case 0x89: _stack.Add(false); break;
                    case (byte)'J': _stack.Add((long)_in.ReadInt32()); break;            // BININT
                    case (byte)'K': _stack.Add((long)_in.ReadByte()); break;             // BININT1
                    case (byte)'M': _stack.Add((long)_in.ReadUInt16()); break;           // BININT2
                    case 0x8a: _stack.Add(Long(_in.ReadByte())); break;                  // LONG1
                    case 0x8b: _stack.Add(Long(_in.ReadInt32())); break;                 // LONG4
                    case (byte)'G': _stack.Add(BinaryPrimitives.ReadDoubleBigEndian(_in.ReadBytes(8))); break;
                    case (byte)'X': _stack.Add(Encoding.UTF8.GetString(ReadCounted(_in.ReadInt32()))); break;
                    case 0x8c: _stack.Add(Encoding.UTF8.GetString(_in.ReadBytes(_in.ReadByte()))); break;
                    case (byte)'U': _stack.Add(Encoding.Latin1.GetString(_in.ReadBytes(_in.ReadByte()))); break;
                    case (byte)'T': _stack.Add(Encoding.Latin1.GetString(ReadCounted(_in.ReadInt32()))); break;
                    case (byte)'q': _memo[_in.ReadByte()] = _stack[^1]; break;           // BINPUT
                    case (byte)'r': _memo[_in.ReadUInt32()] = _stack[^1]; break;         // LONG_BINPUT
                    case 0x94: _memo[_memo.Count] = _stack[^1]; break;                   // MEMOIZE
                    case (byte)'p': _memo[long.Parse(Line())] = _stack[^1]; break;       // PUT
                    case (byte)'h': _stack.Add(_memo[_in.ReadByte()]); break;            // BINGET
                    case (byte)'j': _stack.Add(_memo[_in.ReadUInt32()]); break;          // LONG_BINGET
                    case (byte)'g': _stack.Add(_memo[long.Parse(Line())]); break;        // GET
                    case (byte)'t': _stack.Add(PopToMark().ToArray()); break;            // TUPLE
                    case 0x85: _stack.Add(new[] { Pop() }); break;
                    case 0x86: { var b = Pop(); var a = Pop(); _stack.Add(new[] { a, b }); break; }
                    case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); _stack.Add(new[] { a, b, c }); break; }
                    case (byte)'l': _stack.Add(PopToMark()); break;                      // LIST
                    case (byte)'a': { var v = Pop(); ((List<object?>)_stack[^1]!).Add(v); break; }
                    case (byte)'e': { var items = PopToMark(); ((List<object?>)_stack[^1]!).AddRange(items); break; }
                    case (byte)'d': _stack.Add(Dict(PopToMark())); break;                // DICT
                    case (byte)'s': { var v = Pop(); var k = Pop(); ((IDictionary)_stack[^1]!)[k!] = v; break; }
                    case (byte)'u':                                                       // SETITEMS
                    {
                        var items = PopToMark();
                        var dict = (IDictionary)_stack[^1]!;
                        for (int i = 0; i < items.Count; i += 2) dict[items[i]!] = items[i + 1];
                        break;
                    }
                    case (byte)'c': _stack.Add(new Global(Line(), Line())); break;       // GLOBAL
                    case 0x93: { var name = (string)Pop()!; var module = (string)Pop()!; _stack.Add(new Global(module, name)); break; }
                    case (byte)'R': { var args = (object?[])Pop()!; var callable = (Global)Pop()!; _stack.Add(Call(callable, args)); break; }
                    case 0x81: { var args = (object?[])Pop()!; var type = (Global)Pop()!; _stack.Add(Call(type, args)); break; }
                    case (byte)'b':                                                        // BUILD: a module's attributes
                    {
                        var state = Pop();
                        if (_stack[^1] is PyObject target) target.State = state;
                        break;
                    }
                    case (byte)'Q': _stack.Add(PersistentLoad((object?[])Pop()!)); break; // BINPERSID
                    default: throw new InvalidDataException($"pickle opcode 0x{op:x2} is not used by torch.save state dicts");
                }
            }
        }

        private object Long(int length)
        {
            var value = new BigInteger(ReadCounted(length), isUnsigned: false, isBigEndian: false);
            return value >= long.MinValue && value <= long.MaxValue ? (long)value : value;
        }

        private static OrderedDictionary<object, object?> Dict(List<object?> items)
        {
            var dict = new OrderedDictionary<object, object?>();
            for (int i = 0; i < items.Count; i += 2) dict[items[i]!] = items[i + 1];
            return dict;
        }

        private static object? Call(Global callable, object?[] args) => callable.FullName switch
        {
            // Older files pass the items as the argument: OrderedDict([[key, value], ...]).
            "collections.OrderedDict" => args.Length > 0 && args[0] is List<object?> pairs
                ? Dict(pairs.SelectMany(pair => (IEnumerable<object?>)pair!).ToList())
                : new OrderedDictionary<object, object?>(),
            "torch._utils._rebuild_tensor" or "torch._utils._rebuild_tensor_v2" => new PendingTensor(
                args[0] as StorageView ?? throw new InvalidDataException("a tensor without a storage"),
                Integer(args[1]),
                ((object?[])args[2]!).Select(Integer).ToArray(),
                ((object?[])args[3]!).Select(Integer).ToArray()),
            "torch._utils._rebuild_parameter" => args[0],
            _ => new PyObject(callable, args),
        };

        /// <summary>('storage', type, key, location, size, view) → the storage, created on first sight.</summary>
        private StorageView PersistentLoad(object?[] pid)
        {
            // Legacy files: ('storage', type, key, location, size, view); zip and TorchScript archives: the first five.
            if (pid.Length < 5 || pid[0] as string != "storage" || pid[1] is not Global type)
                throw new InvalidDataException("a persistent id that is not a tensor storage (a whole pickled module?)");
            string key = (string)pid[2]!;
            if (!Storages.TryGetValue(key, out var storage))
            {
                var (dtype, size) = type.Name switch
                {
                    "DoubleStorage" => (ScalarType.Float64, 8),
                    "FloatStorage" => (ScalarType.Float32, 4),
                    "HalfStorage" => (ScalarType.Float16, 2),
                    "BFloat16Storage" => (ScalarType.BFloat16, 2),
                    "LongStorage" => (ScalarType.Int64, 8),
                    "IntStorage" => (ScalarType.Int32, 4),
                    "ShortStorage" => (ScalarType.Int16, 2),
                    "CharStorage" => (ScalarType.Int8, 1),
                    "ByteStorage" => (ScalarType.Byte, 1),
                    "BoolStorage" => (ScalarType.Bool, 1),
                    _ => throw new InvalidDataException($"storage type {type.FullName} is not supported"),
                };
                Storages[key] = storage = new Storage(dtype, size);
            }
            // A view: (view key, offset in elements, size).
            return pid.Length > 5 && pid[5] is object?[] view ? new StorageView(storage, Integer(view[1])) : new StorageView(storage, 0);
        }
    }
}
