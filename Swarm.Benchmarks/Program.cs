public class Program { public static void Main() { } }
