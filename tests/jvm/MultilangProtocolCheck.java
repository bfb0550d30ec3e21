import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.apache.storm.multilang.BoltMsg;
import org.apache.storm.multilang.ISerializer;
import org.apache.storm.multilang.JsonSerializer;
import org.apache.storm.multilang.NoOutputException;
import org.apache.storm.multilang.ShellMsg;
import org.apache.storm.multilang.SpoutMsg;
import org.apache.storm.shade.net.minidev.json.JSONValue;
import pistats.multilang.FastJsonSerializer;

/**
 * Runs Storm's JsonSerializer and pistats' FastJsonSerializer side by side on the same input
 * (tests/integration/storm/test_multilang_serializer.py compares what each prints).
 *
 * write: stdin holds one JSON array per line (a tuple, read by json-smart as Storm would hold it);
 *        prints, per line, what each serializer writes for a bolt message carrying it, a spout
 *        message and task ids, as "storm\t<hex>" and "fast\t<hex>" lines.
 * read:  stdin is what a Python component writes; prints each message as each serializer reads it.
 */
public class MultilangProtocolCheck {
    public static void main(String[] args) throws Exception {
        byte[] input = System.in.readAllBytes();
        if (args[0].equals("write")) {
            for (String line : new String(input, StandardCharsets.UTF_8).split("\n")) {
                if (line.isEmpty()) continue;
                List<Object> tuple = (List<Object>) JSONValue.parseWithException(line);
                System.out.println("storm\t" + hex(written(new JsonSerializer(), tuple)));
                System.out.println("fast\t" + hex(written(new FastJsonSerializer(), tuple)));
            }
        } else {
            print("storm", new JsonSerializer(), input);
            print("fast", new FastJsonSerializer(), input);
        }
    }

    static byte[] written(ISerializer serializer, List<Object> tuple) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        serializer.initialize(out, InputStream.nullInputStream());
        BoltMsg bolt = new BoltMsg();
        bolt.setId("-6955786537413359385");
        bolt.setComp("kinesis");
        bolt.setStream("default");
        bolt.setTask(9);
        bolt.setTuple(tuple);
        serializer.writeBoltMsg(bolt);
        SpoutMsg spout = new SpoutMsg();
        spout.setCommand("ack");
        spout.setId(tuple.isEmpty() ? null : tuple.get(0));
        serializer.writeSpoutMsg(spout);
        serializer.writeTaskIds(List.of(3, 12, 2147483647));
        return out.toByteArray();
    }

    static void print(String name, ISerializer serializer, byte[] input) throws Exception {
        serializer.initialize(OutputStream.nullOutputStream(), new ByteArrayInputStream(input));
        while (true) {
            ShellMsg m;
            try {
                m = serializer.readShellMsg();
            } catch (NoOutputException end) {
                return;
            } catch (Exception e) {
                System.out.println(name + "\terror " + e.getClass().getSimpleName());
                return;
            }
            String fields = m.getCommand() + "|" + describe(m.getId()) + "|" + m.getMsg() + "|"
                + m.getStream() + "|" + m.getTask() + "|" + m.areTaskIdsNeeded() + "|" + describe(m.getTuple()) + "|"
                + m.getAnchors() + "|" + m.getMetricName() + "|" + describe(m.getMetricParams()) + "|" + m.getLogLevel();
            System.out.println(name + "\t" + fields.replace("\n", "\\n"));
        }
    }

    /** A value with the Java type of each part, so Long against Integer shows. */
    static String describe(Object value) {
        if (value instanceof List) {
            StringBuilder s = new StringBuilder("[");
            for (Object item : (List<?>) value) s.append(describe(item)).append(",");
            return s.append("]").toString();
        }
        return value == null ? "null" : value.getClass().getSimpleName() + ":" + value;
    }

    static String hex(byte[] bytes) {
        StringBuilder s = new StringBuilder();
        for (byte b : bytes) s.append(String.format("%02x", b));
        return s.toString();
    }
}
