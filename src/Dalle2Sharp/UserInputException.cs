namespace Dalle2Sharp;

/// <summary>A problem with what the user gave us (a file, an argument, a device): reported as a message, never a stack trace.</summary>
public class UserInputException(string message, Exception? inner = null) : Exception(message, inner);
