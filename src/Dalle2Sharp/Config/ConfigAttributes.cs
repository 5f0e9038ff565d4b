namespace Dalle2Sharp.Config;

/// <summary>The JSON key of a config option and the one-line text shown in the reference, schema and errors.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class KeyAttribute(string name, string description) : Attribute
{
    public string Name { get; } = name;
    public string Description { get; } = description;
}

/// <summary>The option must be present and not null.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class RequiredAttribute : Attribute;

/// <summary>The option's string value (or each string in a list) must be one of these.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class OneOfAttribute(params string[] allowed) : Attribute
{
    public IReadOnlyList<string> Allowed { get; } = allowed;
}

/// <summary>The option is only meaningful when a sibling discriminator (e.g. log_type) has one of these values.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class OnlyForAttribute(string discriminatorKey, params string[] kinds) : Attribute
{
    public string DiscriminatorKey { get; } = discriminatorKey;
    public IReadOnlyList<string> Kinds { get; } = kinds;
}

/// <summary>A list option that upstream also accepts as a single object (tracker.save).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SingleOrListAttribute : Attribute;

/// <summary>A string option that also accepts a JSON number (torchmetrics' `feature`: 64 or "logits_unbiased").</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class AcceptNumberAttribute : Attribute;
