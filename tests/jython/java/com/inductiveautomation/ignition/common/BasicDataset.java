/*
 * TEST DOUBLE of Ignition's com.inductiveautomation.ignition.common.BasicDataset - NOT Ignition.
 *
 * Only the constructor and the methods the python3 library and its tests touch, with the
 * documented meaning (SDK javadoc): BasicDataset(String[] columnNames, Class<?>[] columnTypes,
 * Object[][] data), data column-major (data[column][row]). Compiled for the Jython tests only
 * (tests/jython/jvm.py); never shipped.
 */
package com.inductiveautomation.ignition.common;

import java.util.Arrays;
import java.util.List;

public class BasicDataset {
    private final String[] columnNames;
    private final Class<?>[] columnTypes;
    private final Object[][] data;

    public BasicDataset(String[] columnNames, Class<?>[] columnTypes, Object[][] data) {
        this.columnNames = columnNames;
        this.columnTypes = columnTypes;
        this.data = data;
    }

    public List<String> getColumnNames() {
        return Arrays.asList(columnNames);
    }

    public List<Class<?>> getColumnTypes() {
        return Arrays.asList(columnTypes);
    }

    public int getColumnCount() {
        return columnNames.length;
    }

    public int getRowCount() {
        return data.length == 0 ? 0 : data[0].length;
    }

    public Object getValueAt(int row, int col) {
        return data[col][row];
    }

    public Object getValueAt(int row, String col) {
        return data[Arrays.asList(columnNames).indexOf(col)][row];
    }

    public Object[][] getData() {
        return data;
    }
}
