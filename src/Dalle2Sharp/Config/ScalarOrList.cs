namespace Dalle2Sharp.Config;

/// <summary>
/// An option that upstream accepts either as one value for every unet (or stage) or as a list with
/// one value per unet (lr, wd, cond_scale, beta_schedule, self_attn, ...).
/// </summary>
public sealed class ScalarOrList<T> : IScalarOrList
{
    public ScalarOrList(T scalar) => Scalar = scalar;
    public ScalarOrList(IReadOnlyList<T> list) => List = list;

    public T? Scalar { get; }
    public IReadOnlyList<T>? List { get; }
    public bool IsList => List is not null;

    /// <summary>Number of entries when given as a list, otherwise null.</summary>
    public int? Count => List?.Count;

    /// <summary>The value for one index: the scalar for every index, or the list's entry.</summary>
    public T At(int index) => List is null ? Scalar! : List[index];

    /// <summary>One value per index: the scalar repeated, or the list (whose length validation has checked).</summary>
    public IReadOnlyList<T> Expand(int count) => List ?? Enumerable.Repeat(Scalar!, count).ToArray();

    public IEnumerable<object?> Values => List is null ? [Scalar] : List.Cast<object?>();

    public static implicit operator ScalarOrList<T>(T scalar) => new(scalar);
    public static implicit operator ScalarOrList<T>(T[] list) => new(list);

    public override string ToString() => List is null ? $"{Scalar}" : $"[{string.Join(", ", List)}]";
}

/// <summary>Untyped view used by the binder, writer and schema.</summary>
public interface IScalarOrList
{
    bool IsList { get; }
    int? Count { get; }
    IEnumerable<object?> Values { get; }
}
