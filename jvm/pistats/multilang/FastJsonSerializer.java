package pistats.multilang;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.storm.multilang.BoltMsg;
import org.apache.storm.multilang.ISerializer;
import org.apache.storm.multilang.NoOutputException;
import org.apache.storm.multilang.ShellMsg;
import org.apache.storm.multilang.SpoutMsg;
import org.apache.storm.shade.net.minidev.json.JSONObject;
import org.apache.storm.shade.net.minidev.json.JSONValue;
import org.apache.storm.shade.net.minidev.json.parser.ParseException;
import org.apache.storm.task.TopologyContext;
import org.apache.storm.utils.Utils;

/**
 * Storm's JSON multilang protocol, the one the Python components speak with
 * {@code org.apache.storm.multilang.JsonSerializer}, with a faster writer for the messages sent to
 * them (tuples, spout commands, task ids): the same JSON values, in another key order and with
 * fewer escapes.
 *
 * <p>Why: Storm's serializer writes every string through json-smart's escaper, one character at a
 * time into a StringBuilder; with micro-batch tuples of several kilobytes that was a quarter of
 * the Storm JVM's sampled CPU under load (JFR, docs/performance.md). Here a string is written in
 * runs of characters that need no escape. Reading stays json-smart's parser, so what the Python
 * components send becomes the same Java values as with Storm's serializer (Integer, Long or
 * BigInteger by size: the fields grouping hashes them). The handshake (conf, context) goes through
 * json-smart too.
 *
 * <p>Two differences, both where Storm's serializer loses: a lone surrogate in a string is written
 * as an escape (Storm's writer lets the UTF-8 encoder turn it into '?'), and an emit's "task" may be
 * any whole number (Storm's casts it to Long and fails on the Integer json-smart reads).
 * tests/integration/storm/test_multilang_serializer.py runs both side by side.
 *
 * <p>Select it with {@code topology.multilang.serializer}; a Python component notices no difference.
 */
public class FastJsonSerializer implements ISerializer {
    private static final long serialVersionUID = 1L;
    private static final String END = "\nend\n";
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private transient BufferedWriter toProcess;
    private transient BufferedReader fromProcess;

    @Override
    public void initialize(OutputStream processIn, InputStream processOut) {
        toProcess = new BufferedWriter(new OutputStreamWriter(processIn, StandardCharsets.UTF_8), 1 << 16);
        fromProcess = new BufferedReader(new InputStreamReader(processOut, StandardCharsets.UTF_8), 1 << 16);
    }

    @Override
    public Number connect(Map<String, Object> conf, TopologyContext context) throws IOException, NoOutputException {
        JSONObject setup = new JSONObject();
        setup.put("pidDir", context.getPIDDir());
        setup.put("conf", conf);
        setup.put("context", context);
        toProcess.write(JSONValue.toJSONString(setup));
        endMessage();
        return (Number) ((Map<?, ?>) readMessage()).get("pid");
    }

    @Override
    public void writeBoltMsg(BoltMsg msg) throws IOException {
        writeObject("id", msg.getId(), "comp", msg.getComp(), "stream", msg.getStream(), "task", msg.getTask(),
                    "tuple", msg.getTuple());
    }

    @Override
    public void writeSpoutMsg(SpoutMsg msg) throws IOException {
        writeObject("command", msg.getCommand(), "id", msg.getId());
    }

    /** One message: a JSON object of the given names and values, in that order. */
    private void writeObject(Object... namesAndValues) throws IOException {
        Writer out = toProcess;
        out.write('{');
        for (int i = 0; i < namesAndValues.length; i += 2) {
            if (i > 0) {
                out.write(',');
            }
            writeString(out, (String) namesAndValues[i]);
            out.write(':');
            writeValue(out, namesAndValues[i + 1]);
        }
        out.write('}');
        endMessage();
    }

    @Override
    public void writeTaskIds(List<Integer> taskIds) throws IOException {
        writeValue(toProcess, taskIds);
        endMessage();
    }

    private void endMessage() throws IOException {
        toProcess.write(END);
        toProcess.flush();
    }

    /** Strings, whole numbers, booleans, null, lists and maps directly; anything else as json-smart writes it. */
    static void writeValue(Writer out, Object value) throws IOException {
        if (value == null) {
            out.write("null");
        } else if (value instanceof String) {
            writeString(out, (String) value);
        } else if (value instanceof Long || value instanceof Integer || value instanceof Short || value instanceof Byte) {
            out.write(value.toString());
        } else if (value instanceof Boolean) {
            out.write(((Boolean) value) ? "true" : "false");
        } else if (value instanceof List) {
            out.write('[');
            boolean first = true;
            for (Object item : (List<?>) value) {
                if (!first) {
                    out.write(',');
                }
                first = false;
                writeValue(out, item);
            }
            out.write(']');
        } else if (value instanceof Map) {
            out.write('{');
            boolean first = true;
            for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
                if (!first) {
                    out.write(',');
                }
                first = false;
                writeString(out, String.valueOf(entry.getKey()));
                out.write(':');
                writeValue(out, entry.getValue());
            }
            out.write('}');
        } else {
            out.write(JSONValue.toJSONString(value));
        }
    }

    /**
     * A JSON string: runs of characters that need no escape are written as they are; quote,
     * backslash and control characters are escaped, and so is every surrogate (a pair becomes two
     * escapes that a JSON reader joins again; a lone one survives, which raw UTF-8 could not carry).
     */
    static void writeString(Writer out, String s) throws IOException {
        out.write('"');
        int run = 0;
        int n = s.length();
        for (int i = 0; i < n; i++) {
            char c = s.charAt(i);
            if (c >= 0x20 && c != '"' && c != '\\' && (c < 0xD800 || c > 0xDFFF)) {
                continue;
            }
            out.write(s, run, i - run);
            run = i + 1;
            switch (c) {
                case '"': out.write("\\\""); break;
                case '\\': out.write("\\\\"); break;
                case '\n': out.write("\\n"); break;
                case '\r': out.write("\\r"); break;
                case '\t': out.write("\\t"); break;
                case '\b': out.write("\\b"); break;
                case '\f': out.write("\\f"); break;
                default:
                    out.write("\\u");
                    out.write(HEX[(c >> 12) & 0xF]);
                    out.write(HEX[(c >> 8) & 0xF]);
                    out.write(HEX[(c >> 4) & 0xF]);
                    out.write(HEX[c & 0xF]);
            }
        }
        out.write(s, run, n - run);
        out.write('"');
    }

    @Override
    @SuppressWarnings("unchecked")  // a tuple is a JSON array, read as a List of Objects
    public ShellMsg readShellMsg() throws IOException, NoOutputException {
        Object parsed = readMessage();
        if (!(parsed instanceof Map)) {
            throw new IOException("multilang: expected a JSON object from the subprocess, got " + parsed);
        }
        Map<?, ?> message = (Map<?, ?>) parsed;
        ShellMsg shellMsg = new ShellMsg();
        String command = (String) message.get("command");
        shellMsg.setCommand(command);
        shellMsg.setId(message.get("id"));
        shellMsg.setMsg((String) message.get("msg"));
        Object stream = message.get("stream");
        shellMsg.setStream(stream == null ? Utils.DEFAULT_STREAM_ID : (String) stream);
        Object task = message.get("task");
        shellMsg.setTask(task == null ? 0 : ((Number) task).longValue());
        Object needTaskIds = message.get("need_task_ids");
        shellMsg.setNeedTaskIds(needTaskIds == null || (Boolean) needTaskIds);
        shellMsg.setTuple((List<Object>) message.get("tuple"));
        Object anchors = message.get("anchors");
        if (anchors instanceof String) {
            anchors = Arrays.asList(anchors);
        }
        if (anchors != null) {
            for (Object anchor : (List<?>) anchors) {
                shellMsg.addAnchor((String) anchor);
            }
        }
        Object name = message.get("name");
        shellMsg.setMetricName(name instanceof String ? (String) name : null);
        shellMsg.setMetricParams(message.get("params"));
        Object level = message.get("level");
        if ("log".equals(command) && level instanceof Long) {
            shellMsg.setLogLevel(((Long) level).intValue());
        }
        return shellMsg;
    }

    private Object readMessage() throws IOException, NoOutputException {
        StringBuilder text = new StringBuilder();
        while (true) {
            String line = fromProcess.readLine();
            if (line == null) {
                throw new NoOutputException("Pipe to subprocess seems to be broken! "
                    + (text.length() == 0 ? "No output read." : "Read so far: " + text));
            }
            if (line.equals("end")) {
                break;
            }
            if (text.length() != 0) {
                text.append('\n');
            }
            text.append(line);
        }
        try {
            return JSONValue.parseWithException(text.toString());
        } catch (ParseException e) {
            throw new IOException(e);
        }
    }
}
